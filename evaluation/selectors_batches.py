"""Reads of evaluation batches for leads and ML engineers (the models' names included: never for annotators)."""

from django.db.models import Count, QuerySet

from annotation.models import Project
from evaluation.models import EvaluationBatch
from trainer.selectors import identity_leak_counts


def _evaluation_batches() -> QuerySet[EvaluationBatch]:
    return (
        EvaluationBatch.objects.select_related(
            "batch__criteria_version", "eval_set", "candidate", "baseline", "created_by"
        )
        .annotate(item_count=Count("items"))
        .order_by("-created_at", "-pk")
    )


def evaluation_batch_list(*, project: Project | int) -> list[EvaluationBatch]:
    """The project's evaluation batches, newest first, each with `item_count`."""
    project_id = project if isinstance(project, int) else project.pk
    return list(_evaluation_batches().filter(batch__project_id=project_id))


def evaluation_batch_get(*, evaluation_batch_id: int) -> EvaluationBatch | None:
    return _evaluation_batches().filter(pk=evaluation_batch_id).first()


def identity_leaks(*, evaluation: EvaluationBatch) -> dict[str, int]:
    """How many of each side's responses in the batch (sample 0) match the project's identity-leak patterns, as the
    generate run marked them: such a response names a model or vendor to the annotators who read it."""
    counts = identity_leak_counts(run_ids=[evaluation.candidate.run_id, evaluation.baseline.run_id])
    return {
        "candidate": counts.get(evaluation.candidate.run_id, 0),
        "baseline": counts.get(evaluation.baseline.run_id, 0),
    }
