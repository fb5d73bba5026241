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


@shared_task(name="evaluation.build_handoff")
def build_handoff_task(release_id: int, with_weights: bool = False) -> str:
    """Write a release's hand-off package (evaluation.services.handoff); its path under ARTIFACTS_DIR. Sent through
    the outbox by the release service; it may load the reward models (torch) to score them by dimension."""
    from evaluation.models import Release
    from evaluation.services.handoff import handoff_build

    release = Release.objects.get(pk=release_id)
    handoff_build(release=release, with_weights=with_weights)
    return release.package_path
