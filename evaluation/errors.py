"""Why an evaluation set cannot be imported or a generation run started. Each error carries the API's `code` and
HTTP status (annotation.errors.TandemError): the API handler shapes them into {"code", "detail", ...extra}."""

from core.errors import TandemError


class EvaluationError(TandemError):
    status, code = 400, "invalid_evaluation"


class EvaluationNotAllowed(EvaluationError):
    status, code = 403, "not_allowed"


class EvalSetInvalid(EvaluationError):
    """A file refused whole: `errors` lists {"line", "reason"} for every bad line ({"line": None} for the file as a
    whole), `error_count` counts them all when the list was cut."""

    code = "invalid_eval_set"


class EvalSetTampered(EvaluationError):
    """The set's prompt file is missing or differs from the sha256 stored when it was imported."""

    status, code = 409, "eval_set_tampered"


class ModelRefused(EvaluationError):
    """The model named for a generation run is not one this set can be sampled with (unknown, another project's,
    a run with no final checkpoint, a checkpoint whose files were removed)."""

    code = "invalid_model"


class RunUnfinished(ModelRefused):
    """run:ID of a run that has not finished: its final checkpoint does not exist yet."""

    code = "run_unfinished"


class EvalSetOverlap(EvaluationError):
    """Prompts of the set appear in the training data of the model's lineage: `ids` names them."""

    status, code = 409, "eval_set_overlap"


# --- Evaluation batches (evaluation.services.eval_batches) --------------------------------------------------------


class EvalBatchRefused(EvaluationError):
    """Two generation runs that cannot make an evaluation batch together; nothing was written."""

    code = "eval_batch_refused"


class NotAGenerationRun(EvalBatchRefused):
    code = "not_generation_run"


class SameRunTwice(EvalBatchRefused):
    code = "same_run"


class DifferentProjects(EvalBatchRefused):
    code = "different_projects"


class DifferentEvalSets(EvalBatchRefused):
    code = "different_eval_sets"


class GenerationUnfinished(EvalBatchRefused):
    status, code = 409, "generation_unfinished"


class GenerationsMissing(EvalBatchRefused):
    """Prompts of the set with no response (sample 0) from one side: `missing` maps each run id to those prompt ids."""

    status, code = 409, "generations_missing"
