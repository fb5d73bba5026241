"""Starting a generation run: one model (a checkpoint, a finished run's final checkpoint, or a base-model folder)
sampled on one evaluation set, as a trainer run of kind `generate`, with the Sampled row that ties it to the set.

Refused with nothing written: a user who may not start runs, an unknown model or one of another project, `run:ID` of
a run that has not finished (or did not succeed, or has no final checkpoint), a checkpoint whose files were removed or
changed, a prompt file changed since the import, a set whose prompts appear in the training data of the model's
lineage (evaluation.services.held_out) unless the overlap is explicitly allowed, which is then recorded.
"""

import os
import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from evaluation.errors import EvalSetOverlap, EvaluationNotAllowed, ModelRefused, RunUnfinished
from evaluation.models import EvalSet, Sampled
from evaluation.selectors import generation_can_start
from evaluation.services.eval_sets import eval_set_verify
from evaluation.services.held_out import eval_set_overlap
from trainer.configs import ConfigError
from trainer.models import POLICY_KINDS, Checkpoint, Kind, Status, TrainingRun
from trainer.selectors import checkpoint_in_project, run_final_checkpoint, run_in_project
from trainer.services.runs import run_start, run_start_check

_CHECKPOINT = re.compile(r"checkpoint:(\d{1,18})")
_RUN = re.compile(r"run:(\d{1,18})")
MAX_OVERLAP_IDS_SHOWN = 20


@dataclass(frozen=True)
class SamplingModel:
    """What a generation run samples: `config_model` goes in the run's config, `model_key` and `label` in Sampled."""

    config_model: str
    model_key: str
    label: str
    checkpoint: Checkpoint | None


def generation_model_resolve(*, eval_set: EvalSet, model: str) -> SamplingModel:
    """The model a generation run on `eval_set` would sample, or ModelRefused / RunUnfinished / ConfigError (a
    folder or hub id the project may not load) saying why not."""
    project_id = eval_set.project_id
    model = model.strip() if isinstance(model, str) else ""
    if not model:
        raise ConfigError({"model": "Name the model: checkpoint:ID, run:ID or a base-model folder."})
    if model.startswith("checkpoint:"):
        match = _CHECKPOINT.fullmatch(model)
        checkpoint = match and checkpoint_in_project(checkpoint_id=int(match.group(1)), project_id=project_id)
        if not checkpoint:
            raise ModelRefused(f"No checkpoint {model.removeprefix('checkpoint:')} in this project.")
        return _from_checkpoint(checkpoint)
    if model.startswith("run:"):
        match = _RUN.fullmatch(model)
        run = match and run_in_project(run_id=int(match.group(1)), project_id=project_id)
        if not run:
            raise ModelRefused(f"No run {model.removeprefix('run:')} in this project.")
        if run.kind not in POLICY_KINDS:
            raise ModelRefused(f"Run {run.pk} is a {run.get_kind_display()} run: it does not write responses.")
        if run.status in (Status.QUEUED, Status.RUNNING):
            raise RunUnfinished(
                f"Run {run.pk} is {run.get_status_display().lower()}: generate from a finished run or name one of "
                "its checkpoints (checkpoint:ID)."
            )
        if run.status != Status.SUCCEEDED:
            raise RunUnfinished(
                f"Run {run.pk} {run.get_status_display().lower()}: it has no final checkpoint; name one of the "
                "checkpoints it reached (checkpoint:ID)."
            )
        final = run_final_checkpoint(run=run)
        if final is None:
            raise ModelRefused(f"Run {run.pk} has no final checkpoint recorded: name one of its checkpoints.")
        return _from_checkpoint(final)
    from trainer.model_paths import model_resolve  # resolves and confines folders and hub ids as run_start does

    resolved = model_resolve(value=model, project_id=project_id, field="model")
    name = os.path.basename(resolved.stored.rstrip("/")) if not resolved.hub else resolved.stored
    return SamplingModel(
        config_model=resolved.stored, model_key=f"base:{resolved.stored}", label=f"base {name}", checkpoint=None
    )


def _from_checkpoint(checkpoint: Checkpoint) -> SamplingModel:
    label = f"run {checkpoint.run_id} · step {checkpoint.step}"
    return SamplingModel(
        config_model=f"checkpoint:{checkpoint.pk}",
        model_key=f"checkpoint:{checkpoint.pk}",
        label=label + (" (final)" if checkpoint.final else ""),
        checkpoint=checkpoint,
    )


def generation_start(
    *,
    eval_set: EvalSet,
    model: str,
    config: dict | None = None,
    created_by: AbstractBaseUser | None = None,
    allow_overlap: bool = False,
    input_errors: dict[str, str] | None = None,
) -> Sampled:
    """Queues a generate run of `model` on the set and stores its Sampled row, in one transaction.

    `config` holds the generate settings (trainer.configs: n, temperature, top_p, max_new_tokens, seed, ...);
    `model` is not one of them here. `input_errors` are problems the caller found reading its own input (a --set
    line): reported with the rest (ConfigError), nothing queued.
    """
    if created_by is not None and not generation_can_start(user=created_by, project=eval_set.project_id):
        raise EvaluationNotAllowed("Only the project's ML engineers can start generation runs.")
    config = dict(config or {})
    if "model" in config:
        raise ConfigError({"model": "Name the model apart from the settings (--model, or the request's model)."})
    sampling = generation_model_resolve(eval_set=eval_set, model=model)
    if sampling.checkpoint is not None:
        from trainer.checkpoints import checkpoint_verify  # CheckpointTampered (409) or CheckpointGone (410)

        checkpoint_verify(checkpoint=sampling.checkpoint)
    run_config = {**config, "model": sampling.config_model}
    # Settings first, every problem at once (as run_start would list them), before the costlier checks below.
    _, errors = run_start_check(kind=Kind.GENERATE, snapshot=None, config=run_config, project_id=eval_set.project_id)
    errors.update(input_errors or {})
    if errors:
        raise ConfigError(errors)
    eval_set_verify(eval_set=eval_set)
    overlap = eval_set_overlap(eval_set=eval_set, run=sampling.checkpoint.run if sampling.checkpoint else None)
    if overlap and not allow_overlap:
        shown = ", ".join(overlap[:MAX_OVERLAP_IDS_SHOWN]) + (" ..." if len(overlap) > MAX_OVERLAP_IDS_SHOWN else "")
        raise EvalSetOverlap(
            f"{len(overlap)} prompt(s) of {eval_set} appear in the training data of {sampling.label}'s lineage "
            f"({shown}): its responses to them say nothing about held-out prompts. Allow the overlap explicitly to "
            "generate anyway; it is then recorded.",
            ids=overlap,
        )
    with transaction.atomic():
        run: TrainingRun = run_start(
            kind=Kind.GENERATE,
            snapshot=None,
            project_id=eval_set.project_id,
            config=run_config,
            inputs={"prompts": {"path": eval_set.path, "sha256": eval_set.sha256, "count": eval_set.prompt_count}},
            sampled_checkpoint=sampling.checkpoint,
            created_by=created_by,
            input_errors=input_errors,
        )
        return Sampled.objects.create(
            run=run,
            eval_set=eval_set,
            model_key=sampling.model_key,
            label=sampling.label,
            overlap_allowed=allow_overlap,
            overlap_ids=overlap,
        )
