"""Celery tasks for evaluation: each takes ids and calls one service."""

from celery import shared_task


@shared_task(name="evaluation.refresh_leaderboard")
def refresh_leaderboard_task(project_id: int) -> int | None:
    """Store a fresh leaderboard of the project unless the latest is current (or being refreshed); the new row's
    id, or None. Sent through the outbox by the Checkpoints page when it finds no row or a stale one."""
    from evaluation.services.leaderboards import leaderboard_refresh_if_changed

    snapshot = leaderboard_refresh_if_changed(project_id=project_id)
    return snapshot.pk if snapshot is not None else None


@shared_task(name="evaluation.refresh_due_leaderboards")
def refresh_due_leaderboards_task() -> list[int]:
    """Beat's timer (TANDEM_LEADERBOARD_REFRESH_SECONDS): refresh the leaderboard of every project whose evaluation
    data moved since its latest one; the project ids refreshed."""
    from evaluation.services.leaderboards import leaderboards_refresh_due

    return leaderboards_refresh_due()
