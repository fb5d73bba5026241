"""Celery tasks for the outbox (the drain, run by beat every few seconds and asked for by every worker that starts,
so that what piled up while the broker was away goes out once it is back) and for jobs (core.jobs)."""

import logging

from celery import shared_task
from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@shared_task(name="core.drain_outbox", queue="default", ignore_result=True)
def drain_outbox_task() -> dict[str, int]:
    from core.outbox import outbox_drain, outbox_prune

    report = outbox_drain()
    outbox_prune()
    return {"sent": len(report.sent), "retrying": len(report.retrying), "gave_up": len(report.gave_up)}


@worker_ready.connect(dispatch_uid="core.drain_outbox_when_a_worker_starts")
def drain_when_a_worker_starts(sender=None, **kwargs) -> None:
    # The worker's own connection works now; the drain itself runs in the pool like any task, on `default`.
    try:
        drain_outbox_task.apply_async(queue="default", retry=False)
    except Exception:
        logger.exception("outbox: could not ask for a drain at worker start; beat will drain")


@shared_task(name="core.run_job", queue="default", ignore_result=True)
def run_job_task(job_id: int) -> None:
    """A job a request asked for (core.jobs): an import, a dataset snapshot."""
    from core.jobs import job_run

    job_run(job_id=job_id)
