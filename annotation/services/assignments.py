"""The assignment engine: lease the next item to an annotator, never past the item's overlap.

Guarantees live in the database. On PostgreSQL, candidate items are locked with FOR UPDATE SKIP LOCKED and
their open leases recounted under the lock, so two annotators cannot both take an item's last slot; on SQLite
every write transaction is IMMEDIATE, which serialises this path. A unique (item, annotator) constraint stops
one annotator seeing an item twice. An expired lease simply stops counting: no periodic job has to free it.
"""

import random
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.errors import SessionLimit
from annotation.models import AnnotationSession, Assignment, Batch, Item

_crypto = random.SystemRandom()
# How many locked candidates to try per request before giving up on this round.
_CANDIDATES = 8


@transaction.atomic
def assignment_next(*, session: AnnotationSession) -> Assignment | None:
    """The session's open lease if it has one, else a new lease, else None when nothing is left.

    Raises SessionLimit when the session's tasks or minutes are used up.
    """
    now = timezone.now()
    # One request at a time per session: keeps "one open lease per session" true under concurrent tabs.
    session = AnnotationSession.objects.select_for_update().select_related("project").get(pk=session.pk)
    if session.tasks_done >= session.max_tasks:
        raise SessionLimit("You have reached this session's task limit.")
    open_lease = (
        Assignment.objects.filter(session=session, judged_at__isnull=True, lease_expires_at__gt=now)
        .select_related("item__batch__criteria_version")
        .first()
    )
    if open_lease is not None and open_lease.item.batch.status == Batch.Status.OPEN:
        return open_lease  # a reload gets the same item, even in the session's last minute
    if now >= session.expires_at:
        raise SessionLimit("This session's time is up.")

    project = session.project
    want_gold = project.gold_rate > 0 and _crypto.random() < project.gold_rate
    # A gold draw falls back to a regular item; a regular draw never falls back to gold, so gold stays a sample.
    item = (_lease_gold(session, now) if want_gold else None) or _lease_regular(session, now)
    if item is None:
        return None
    assignment = Assignment.objects.create(
        session=session,
        item=item,
        annotator_id=session.annotator_id,
        left_is_a=_crypto.random() < 0.5,
        leased_at=now,
        lease_expires_at=now + timedelta(minutes=project.lease_minutes),
    )
    assignment.item = item
    return assignment


def _open_items(session: AnnotationSession):
    return (
        Item.objects.filter(project_id=session.project_id, batch__status=Batch.Status.OPEN)
        .exclude(Exists(Assignment.objects.filter(item=OuterRef("pk"), annotator_id=session.annotator_id)))
        .select_related("batch__criteria_version")
    )


def _lease_gold(session: AnnotationSession, now: datetime) -> Item | None:
    # Gold items have no overlap cap: every annotator may meet each one once.
    ids = list(_open_items(session).filter(~Q(gold="")).values_list("pk", flat=True)[:500])
    if not ids:
        return None
    return _open_items(session).filter(pk=_crypto.choice(ids)).first()


def _active_leases(now: datetime):
    return (
        Assignment.objects.filter(item=OuterRef("pk"), judged_at__isnull=True, lease_expires_at__gt=now)
        .order_by()
        .values("item")
        .annotate(n=Count("pk"))
        .values("n")
    )


def _lease_regular(session: AnnotationSession, now: datetime) -> Item | None:
    overlap = session.project.overlap
    candidates = (
        _open_items(session)
        .filter(gold="", judgment_count__lt=overlap + F("extra_judgments"))
        .annotate(leases=Coalesce(Subquery(_active_leases(now)), Value(0)))
        .filter(judgment_count__lt=overlap + F("extra_judgments") - F("leases"))
        # Items closest to complete first, so batches finish instead of every item being half done.
        .order_by("-judgment_count", "pk")
    )
    if connection.features.has_select_for_update_skip_locked:
        candidates = candidates.select_for_update(skip_locked=True, of=("self",))
    for item in candidates[:_CANDIDATES]:
        if _has_free_slot(item, overlap, now):
            return item
    return None


def _has_free_slot(item: Item, overlap: int, now: datetime) -> bool:
    """Recount under the row lock: the candidate query's snapshot may predate a lease committed since."""
    fresh = Item.objects.filter(pk=item.pk).values("judgment_count", "extra_judgments").first()
    leases = Assignment.objects.filter(item_id=item.pk, judged_at__isnull=True, lease_expires_at__gt=now).count()
    return fresh["judgment_count"] + leases < overlap + fresh["extra_judgments"]
