"""Celery tasks for rewards: each takes ids and calls one service."""

from celery import shared_task
from django.conf import settings
from django.utils import timezone


@shared_task(name="rewards.snapshot_batch")
def snapshot_batch_task(batch_id: int) -> int:
    """Compute and store one batch's agreement snapshot; returns the snapshot's id."""
    from annotation.models import Batch
    from rewards.services.snapshots import snapshot_compute

    return snapshot_compute(batch=Batch.objects.get(pk=batch_id)).pk


@shared_task(name="rewards.refresh_open_batches")
def refresh_open_batches_task() -> list[int]:
    """Periodic (beat): snapshot the open batches that are due, whichever of N judgments or the age comes first."""
    from rewards.selectors import batches_due_for_snapshot

    due = batches_due_for_snapshot(
        every_n=settings.TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS,
        max_age_seconds=settings.TANDEM_SNAPSHOT_MAX_AGE_SECONDS,
        now=timezone.now(),
    )
    for batch_id in due:
        snapshot_batch_task.delay(batch_id)
    return due
