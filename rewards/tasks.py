"""Celery tasks for rewards: each takes ids and calls one service."""

from celery import shared_task
from django.conf import settings


@shared_task(name="rewards.snapshot_batch")
def snapshot_batch_task(batch_id: int) -> int:
    """Compute and store one batch's agreement snapshot; returns the snapshot's id."""
    from annotation.models import Batch
    from rewards.services.snapshots import snapshot_compute

    return snapshot_compute(batch=Batch.objects.get(pk=batch_id)).pk


@shared_task(name="rewards.refresh_open_batches")
def refresh_open_batches_task(every_n: int | None = None, max_age_seconds: float | None = None) -> list[int]:
    """Snapshot the open batches that are due, whichever of N more judgments or the age comes first; returns their
    ids. Run by beat (the timer) and, every N judgments, by rewards.receivers, which passes its N so that web and
    worker agree on it."""
    from rewards.services.snapshots import snapshots_refresh_due

    return snapshots_refresh_due(
        every_n=every_n or settings.TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS,
        max_age_seconds=settings.TANDEM_SNAPSHOT_MAX_AGE_SECONDS if max_age_seconds is None else max_age_seconds,
    )
