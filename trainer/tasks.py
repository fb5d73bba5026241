"""Celery tasks for runs: each takes ids and calls one service. trainer.* is routed to the `gpu` queue by
config/celery.py, except the reaper, which is sent to `default` explicitly (beat and callers say so)."""

from celery import shared_task


@shared_task(
    name="trainer.run_training",
    bind=True,
    # Acknowledged when it ends, so a message is not lost with a worker that dies before it starts training; the
    # run's row (claimed once, heartbeat) decides what a redelivered message does. One task at a time per
    # process comes from the worker: prefetch 1 (settings) and --max-tasks-per-child 1 on GPU workers.
    acks_late=True,
    reject_on_worker_lost=True,
    track_started=True,
)
def run_training_task(self, run_id: int) -> str:
    from trainer.services.execute import run_execute  # torch, transformers and trl stay out of the web process

    return run_execute(run_id=run_id, task_id=self.request.id or "", worker=self.request.hostname or "")


@shared_task(name="trainer.mark_lost_runs", queue="default")
def mark_lost_runs_task() -> list[int]:
    """Periodic (beat): running runs whose heartbeat stopped become lost; queued runs that no worker took are sent
    once more, then failed (trainer.services.runs.runs_requeue_unclaimed)."""
    from trainer.services.runs import runs_mark_lost, runs_requeue_unclaimed

    return runs_mark_lost() + runs_requeue_unclaimed()
