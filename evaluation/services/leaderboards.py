"""Stored leaderboards: a project's checkpoint leaderboard computed off the request and kept as a LeaderboardSnapshot,
so that the Checkpoints page and the leaderboard API only read (the way agreement snapshots work for batches).

Refreshed by beat (evaluation.refresh_due_leaderboards, every TANDEM_LEADERBOARD_REFRESH_SECONDS: the projects whose
change key moved since their latest row) and by evaluation.refresh_leaderboard, which the page asks for when it
finds no row or a stale one (leaderboard_refresh_enqueue, through the task outbox). Nothing is added to the
judgment path: a new vote only moves the key, which three index-only aggregates read.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annotation.models import Project
from core.models import OutboxMessage
from core.outbox import outbox_enqueue, outbox_latest
from evaluation.models import LeaderboardSnapshot
from evaluation.selectors_results import (
    LeaderboardState,
    latest_leaderboard,
    leaderboard_compute,
    leaderboard_state,
    projects_with_evaluation_batches,
)

logger = logging.getLogger(__name__)

KEPT_PER_PROJECT = 5  # pages read the latest; a few older ones say how the board moved, at ~100 KB each
REFRESH_TASK = "evaluation.refresh_leaderboard"
_LOCK_NAMESPACE = 0x7A4C  # pg_try_advisory_xact_lock(namespace, project id): one refresh per project at a time


def _outbox_key(project_id: int) -> str:
    return f"project:{project_id}:leaderboard"


def leaderboard_refresh(*, project_id: int) -> LeaderboardSnapshot:
    """Compute the project's leaderboard now (its settings' resamples) and store it; keeps the newest
    KEPT_PER_PROJECT rows. The key is read before the judgments: a vote that lands during the computation leaves
    the stored key behind, and the next refresh recomputes (never the other way round, a stale board marked
    current)."""
    project = Project.objects.get(pk=project_id)
    return _refresh(project=project, state=leaderboard_state(project=project), started=time.perf_counter())


def _refresh(*, project: Project, state: LeaderboardState, started: float) -> LeaderboardSnapshot:
    data = leaderboard_compute(project=project, state=state)
    return _store(project=project, key=state.key, data=data, seconds=time.perf_counter() - started)


@transaction.atomic
def _store(*, project: Project, key: str, data: dict, seconds: float) -> LeaderboardSnapshot:
    snapshot = LeaderboardSnapshot.objects.create(
        project=project, computed_at=timezone.now(), key=key, seconds=round(seconds, 3), data=data
    )
    older = (
        LeaderboardSnapshot.objects.filter(project=project)
        .order_by("-computed_at", "-pk")
        .values_list("pk", flat=True)[KEPT_PER_PROJECT:]
    )
    stale = list(older)
    if stale:
        LeaderboardSnapshot.objects.filter(pk__in=stale).delete()
    return snapshot


def leaderboard_refresh_if_changed(*, project_id: int) -> LeaderboardSnapshot | None:
    """Refresh the project's leaderboard when its change key differs from the latest row's; the new row, or None
    when the latest is current or another refresh of the project is running. On PostgreSQL the refresh holds a
    transaction-scoped advisory lock, tried without waiting, so that a duplicate message or the timer meeting an
    on-view request compute once; it locks no row, so nothing else waits on it. On SQLite no transaction is held
    while computing: Tandem's SQLite transactions begin IMMEDIATE (the write lock), which would stall every
    annotator's judgment for the seconds a computation takes; two refreshes there at worst compute the same board."""
    if connection.vendor != "postgresql":
        return _refresh_if_changed(project_id=project_id)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, project_id])
            if not cursor.fetchone()[0]:
                return None
        return _refresh_if_changed(project_id=project_id)


def _refresh_if_changed(*, project_id: int) -> LeaderboardSnapshot | None:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    started = time.perf_counter()
    state = leaderboard_state(project=project)
    latest = latest_leaderboard(project_id=project_id)
    if latest is not None and latest.key == state.key:
        return None
    return _refresh(project=project, state=state, started=started)


def leaderboards_refresh_due() -> list[int]:
    """Refresh every project with evaluation batches whose leaderboard is missing or stale; the project ids
    refreshed. Checking a current project costs its key (five small queries)."""
    refreshed = []
    for project_id in projects_with_evaluation_batches():
        try:
            if leaderboard_refresh_if_changed(project_id=project_id) is not None:
                refreshed.append(project_id)
        except Exception:  # one project's failure must not starve the others; the next tick tries it again
            logger.exception("evaluation.leaderboard_refresh_failed", extra={"project_id": project_id})
    return refreshed


def leaderboard_refresh_enqueue(*, project_id: int) -> OutboxMessage | None:
    """Ask a worker for evaluation.refresh_leaderboard through the task outbox, unless a request for the project is
    already waiting to be sent or was sent less than TANDEM_LEADERBOARD_REFRESH_SECONDS ago (page views of a stale
    board ask once, not once each). The message, or None when one was already asked for."""
    latest = outbox_latest(key=_outbox_key(project_id))
    recent = timezone.now() - timedelta(seconds=settings.TANDEM_LEADERBOARD_REFRESH_SECONDS)
    if latest is not None and (
        latest.status == OutboxMessage.Status.PENDING
        or (latest.status == OutboxMessage.Status.SENT and latest.sent_at and latest.sent_at >= recent)
    ):
        return None
    return outbox_enqueue(task=REFRESH_TASK, args=[project_id], key=_outbox_key(project_id))
