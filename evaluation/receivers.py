"""evaluation's answer to annotation's batch_closed: refresh the project's leaderboard when an evaluation batch
closes (the Checkpoints page shows each batch's status). Only stores an outbox message, in the sender's
transaction (core/outbox.py). Connected in EvaluationConfig.ready()."""

from annotation.models import Batch


def refresh_leaderboard_on_batch_closed(sender, *, batch, **kwargs) -> None:
    if batch.kind != Batch.Kind.EVALUATION:
        return
    from evaluation.services.leaderboards import leaderboard_refresh_enqueue

    leaderboard_refresh_enqueue(project_id=batch.project_id)
