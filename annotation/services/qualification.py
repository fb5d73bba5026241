"""Qualification: a new annotator answers a set of gold items before live work; the attempt is scored and stored.

A project with qualification_required serves an annotator without a passed attempt the items of its qualification
batches (Batch.Kind.QUALIFICATION, gold items only), drawn at random, sides drawn as usual, until the attempt's
`size` are answered (judged, or skipped: a skip counts as answered and not correct, so that skipping the hard ones
buys nothing). The attempt is then scored, correct / size against the gold answers (annotation.rules.gold_matches:
a tie is right on a gold tie), and either live items follow (passed) or every later `next` answers 403
not_qualified until a lead resets the annotator's attempts. The annotator is told their progress and, at the end,
their score; never which answer was right nor how any one item was scored.

The assignment engine (services/assignments.py) calls qualification_lease under the session's row lock; on
PostgreSQL tandem_lease_next (annotation/sql/annotator_loop_v4.sql) answers 'qualify' for such an annotator, and the
engine comes here instead of leasing live work.
"""

import math
import random
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.errors import NotQualified, SessionLimit
from annotation.models import AnnotationSession, Assignment, Batch, CriteriaVersion, Item, QualificationAttempt
from annotation.rules import draw_left_is_a

_crypto = random.SystemRandom()


class Qualified:
    """qualification_lease's answer when the annotator has passed: live work follows."""


QUALIFIED = Qualified()


def qualification_lease(*, session: AnnotationSession, now: datetime) -> "Assignment | Qualified | None":
    """For a session whose project requires qualification, with the session's row locked by the caller: QUALIFIED
    when the annotator has passed; else their open qualification lease or a new one, with `qualification`
    ({"answered", "size"}) set on it for the page; None when no qualification item is left to serve them.

    Scores the attempt once its size is answered. Raises NotQualified after a failed attempt, SessionLimit when the
    session's time is up and no lease is open.
    """
    project = session.project
    counted = QualificationAttempt.objects.filter(project=project, annotator_id=session.annotator_id, reset_at=None)
    if counted.filter(passed=True).exists():
        return QUALIFIED
    attempt = counted.filter(finished_at=None).first()
    if attempt is None:
        failed = counted.filter(passed=False).order_by("-finished_at").first()
        if failed is not None:
            raise NotQualified(_failed_detail(failed))
    open_lease = _open_lease(session, now)
    if open_lease is not None:
        if attempt is not None and _is_qualification_item(open_lease.item):
            open_lease.qualification = _progress_shown(attempt)
            return open_lease
        # A live lease of an annotator whose qualification was reset, or a lease of a reset attempt: it ends now
        # (the item goes back to the pool; this annotator has seen it).
        Assignment.objects.filter(pk=open_lease.pk).update(lease_expires_at=now)
    if attempt is not None:
        _count(attempt)
        if attempt.answered >= attempt.size:
            _score(attempt, now)
            if attempt.passed:
                return QUALIFIED
            raise NotQualified(_failed_detail(attempt))
    if now >= session.expires_at:
        raise SessionLimit("This session's time is up.")  # the engine's words (services/assignments.py)
    item = _draw_item(session)
    if item is None:
        return None  # nothing to qualify on yet: the page waits, as for an empty queue
    if attempt is None:
        attempt = _attempt_start(session=session, now=now)
    assignment = Assignment.objects.create(
        session=session,
        item=item,
        annotator_id=session.annotator_id,
        left_is_a=draw_left_is_a(),
        leased_at=now,
        lease_expires_at=now + timedelta(minutes=project.lease_minutes),
    )
    assignment.item = item
    assignment.qualification = _progress_shown(attempt)
    return assignment


@transaction.atomic
def qualification_reset(*, project, annotator_id: int, by: AbstractBaseUser | None) -> int:
    """Allows the annotator another attempt: every attempt of theirs that counts is marked reset (and one in
    progress finished). Their next `next` starts a new attempt on qualification items they have not seen.
    Returns how many attempts were reset."""
    now = timezone.now()
    return QualificationAttempt.objects.filter(project=project, annotator_id=annotator_id, reset_at=None).update(
        reset_at=now, reset_by=by, finished_at=Coalesce("finished_at", now)
    )


def needed_correct(*, size: int, threshold: float) -> int:
    """The fewest correct answers that pass: correct / size >= threshold."""
    return max(0, math.ceil(threshold * size - 1e-9))


def _failed_detail(attempt: QualificationAttempt) -> str:
    needed = needed_correct(size=attempt.size, threshold=attempt.threshold)
    return (
        f"You did not pass this project's qualification: score {attempt.correct} of {attempt.size}, needed "
        f"{needed}; ask your lead for another attempt."
    )


def _progress_shown(attempt: QualificationAttempt) -> dict:
    return {"answered": attempt.answered, "size": attempt.size}


def _is_qualification_item(item: Item) -> bool:
    batch = item.batch
    return batch.kind == Batch.Kind.QUALIFICATION and batch.status == Batch.Status.OPEN and item.withdrawn_at is None


def _open_lease(session: AnnotationSession, now: datetime) -> Assignment | None:
    return (
        Assignment.objects.filter(session=session, judged_at=None, lease_expires_at__gt=now)
        .select_related("item__batch__criteria_version")
        .first()
    )


def _attempt_leases(attempt: QualificationAttempt):
    return Assignment.objects.filter(
        annotator_id=attempt.annotator_id,
        item__project_id=attempt.project_id,
        item__batch__kind=Batch.Kind.QUALIFICATION,
        leased_at__gte=attempt.started_at,
    )


def _count(attempt: QualificationAttempt) -> None:
    """The attempt's answered and correct, recounted from its leases and stored (the lead sees progress)."""
    counts = _attempt_leases(attempt).aggregate(
        answered=Count("pk", filter=Q(judged_at__isnull=False) | Q(skipped_at__isnull=False)),
        correct=Count("pk", filter=Q(judgment__gold_correct=True)),
    )
    if (counts["answered"], counts["correct"]) != (attempt.answered, attempt.correct):
        attempt.answered, attempt.correct = counts["answered"], counts["correct"]
        attempt.save(update_fields=["answered", "correct"])


def _score(attempt: QualificationAttempt, now: datetime) -> None:
    attempt.finished_at = now
    attempt.score = attempt.correct / attempt.size
    attempt.passed = attempt.correct >= needed_correct(size=attempt.size, threshold=attempt.threshold)
    attempt.save(update_fields=["finished_at", "score", "passed"])


def _draw_item(session: AnnotationSession) -> Item | None:
    """A uniform pick among the project's open qualification items, gold ones, this annotator has not seen."""
    seen = Assignment.objects.filter(item=OuterRef("pk"), annotator_id=session.annotator_id)
    ids = list(
        Item.objects.filter(
            project_id=session.project_id,
            batch__kind=Batch.Kind.QUALIFICATION,
            batch__status=Batch.Status.OPEN,
            gold__gt="",
            withdrawn_at__isnull=True,
        )
        .exclude(Exists(seen))
        .values_list("pk", flat=True)[:500]
    )
    if not ids:
        return None
    return Item.objects.select_related("batch__criteria_version").get(pk=_crypto.choice(ids))


def _attempt_start(*, session: AnnotationSession, now: datetime) -> QualificationAttempt:
    project = session.project
    criteria = CriteriaVersion.objects.filter(project=project).order_by("-number").values_list("number", flat=True)
    try:
        with transaction.atomic():
            return QualificationAttempt.objects.create(
                project=project,
                annotator_id=session.annotator_id,
                started_at=now,
                size=project.qualification_size,
                threshold=project.qualification_threshold,
                criteria_version=criteria.first(),
            )
    except IntegrityError:  # another session of theirs started one first (qualification_one_in_progress)
        return QualificationAttempt.objects.get(project=project, annotator_id=session.annotator_id, finished_at=None)
