"""What an annotator may do besides judging: skip an item, report it, keep its lease alive, revise the last judgment.
And the lead's answer to reports: withdraw items from their batch.

Each acts on the caller's own assignment or judgment only (anyone else's reads as missing, 404). Counts never move
here: a skip or a report frees the lease at once (the row stays, so the engine never serves the item to that annotator
again), a revision changes a judgment in place and keeps the old answer in a JudgmentRevision row.

Locks, where a check and a write must not be split by a concurrent request, are taken in the judgment path's order
(assignment, then item, then session), so the two cannot deadlock. On SQLite every transaction is IMMEDIATE
(config/settings/base.py), which serialises them instead.
"""

import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.errors import BatchClosed, NotFound, SessionLimit
from annotation.models import (
    AnnotationSession,
    Assignment,
    Batch,
    Item,
    ItemReport,
    Judgment,
    JudgmentRevision,
    ReportKind,
)
from annotation.rules import gold_matches
from annotation.services.assignments import slots_per_item

# Validation of a judgment's body is the judgment service's; a revision is checked by the same rule.
from annotation.services.judgments import _validated as judgment_validated
from core.errors import TandemError


class AlreadyJudged(TandemError):
    status, code = 409, "already_judged"


class Skipped(TandemError):
    status, code = 410, "skipped"


class ItemWithdrawn(TandemError):
    status, code = 410, "item_withdrawn"


class LeaseLost(TandemError):
    status, code = 410, "lease_lost"


class ReviseWindowClosed(TandemError):
    status, code = 410, "revise_window_closed"


class ItemComplete(TandemError):
    status, code = 409, "item_complete"


_NOT_FOUND = "No such assignment."
SKIP_REASON_MAX = 500
REPORT_NOTE_MAX = 2000


def _own_assignment(*, assignment_id: uuid.UUID, annotator_id: int) -> Assignment:
    """The annotator's assignment, row-locked, with item, batch and project; NotFound for anyone else's."""
    found = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("item__batch__criteria_version", "item__project")
        .filter(pk=assignment_id, annotator_id=annotator_id)
        .first()
    )
    if found is None:
        raise NotFound(_NOT_FOUND)
    return found


def _release(assignment: Assignment, *, now, reason: str) -> None:
    """Ends the lease now and records the skip: the item's slot is free for others at once."""
    assignment.skipped_at = now
    assignment.skip_reason = reason[:SKIP_REASON_MAX]
    assignment.lease_expires_at = min(assignment.lease_expires_at, now)
    assignment.save(update_fields=["skipped_at", "skip_reason", "lease_expires_at"])


@transaction.atomic
def assignment_skip(*, assignment_id: uuid.UUID, annotator_id: int, reason: str = "") -> Assignment:
    """Passes on the item: it goes back to the pool for others and is never served to this annotator again.

    Skipping twice answers the first skip. A judged assignment cannot be skipped (AlreadyJudged).
    """
    assignment = _own_assignment(assignment_id=assignment_id, annotator_id=annotator_id)
    if assignment.judged_at is not None:
        raise AlreadyJudged("This item is already judged: revise the judgment instead of skipping it.")
    if assignment.skipped_at is None:
        _release(assignment, now=timezone.now(), reason=reason.strip())
    return assignment


@transaction.atomic
def item_report(*, assignment_id: uuid.UUID, annotator_id: int, kind: str, note: str = "") -> tuple[ItemReport, bool]:
    """Reports the assignment's item to the project's leads; (report, created). One report per assignment: a second
    answers the first. An item not yet judged is also passed on, as a skip that says why."""
    assignment = _own_assignment(assignment_id=assignment_id, annotator_id=annotator_id)
    existing = ItemReport.objects.filter(assignment=assignment).first()
    if existing is not None:
        return existing, False
    report = ItemReport.objects.create(
        item_id=assignment.item_id,
        assignment=assignment,
        annotator_id=annotator_id,
        kind=kind,
        note=note.strip()[:REPORT_NOTE_MAX],
    )
    if assignment.judged_at is None and assignment.skipped_at is None:
        _release(assignment, now=report.created_at, reason=f"Reported: {ReportKind(kind).label}")
    return report, True


@transaction.atomic
def assignment_renew(*, assignment_id: uuid.UUID, annotator_id: int) -> tuple[Assignment, bool]:
    """Extends the lease by the project's lease minutes from now; (assignment, relet).

    A lease that has lapsed is let again (relet True) when nothing else has happened since: the item is still free
    (its overlap not taken by others meanwhile), its batch open, the session has no other item open and time left.
    Otherwise LeaseLost (or the reason) says the pick cannot be kept, so the page can say so.
    """
    assignment = _own_assignment(assignment_id=assignment_id, annotator_id=annotator_id)
    item, project, now = assignment.item, assignment.item.project, timezone.now()
    if assignment.judged_at is not None:
        raise AlreadyJudged("This item is already judged.")
    if assignment.skipped_at is not None:
        raise Skipped("This item was skipped.")
    if item.withdrawn_at is not None:
        raise ItemWithdrawn("A lead withdrew this item; it is no longer judged.")
    if item.batch.status != Batch.Status.OPEN:
        raise BatchClosed("This batch was closed.")
    relet = assignment.lease_expires_at <= now
    if relet:
        _check_free_to_relet(assignment=assignment, now=now)
    assignment.lease_expires_at = now + timedelta(minutes=project.lease_minutes)
    assignment.save(update_fields=["lease_expires_at"])
    return assignment, relet


def _check_free_to_relet(*, assignment: Assignment, now) -> None:
    """Under the item's and the session's row locks (as the engine and the judgment take them): may the lapsed
    lease be let again without passing the item's overlap or opening a second item in the session?"""
    item = Item.objects.select_for_update().get(pk=assignment.item_id)
    session = AnnotationSession.objects.select_for_update().get(pk=assignment.session_id)
    if now >= session.expires_at or session.tasks_done >= session.max_tasks:
        raise SessionLimit("This item went back to the pool and this session is over: your pick could not be kept.")
    others_open = _live(Assignment.objects.filter(session_id=session.pk), now).exclude(pk=assignment.pk)
    if others_open.exists():
        raise LeaseLost(
            "This item went back to the pool and another item is open in this session: your pick could not be kept."
        )
    if item.gold:
        return  # gold items have no overlap cap
    leases = _live(Assignment.objects.filter(item_id=item.pk), now).count()
    slots = slots_per_item(batch=assignment.item.batch, project=assignment.item.project)  # writers, for demonstrations
    if item.judgment_count - item.extra_judgments + leases >= slots:
        raise LeaseLost(
            "This item went back to the pool while you were away and other annotators took its remaining places: "
            "your pick could not be kept."
        )


def _live(assignments: QuerySet, now) -> QuerySet:
    return assignments.filter(judged_at__isnull=True, lease_expires_at__gt=now)


@transaction.atomic
def judgment_revise(
    *,
    judgment_id: int,
    annotator_id: int,
    choice: str,
    dimensions: dict[str, str] | None = None,
    justification: str = "",
) -> tuple[Judgment, JudgmentRevision | None]:
    """Changes the annotator's judgment within the project's revise window, while its item is still open;
    (judgment, revision), revision None when the answer is the same as the stored one.

    The judgment keeps its id, its time and its place in every count; the revision keeps what it said before.
    Refused after the window (ReviseWindowClosed), once the item has all its judgments (ItemComplete, so that
    votes a completed item was decided on do not move), or when the batch has closed.
    """
    judgment = (
        Judgment.objects.select_for_update(of=("self",))
        .select_related("assignment__item__batch__criteria_version", "assignment__item__project")
        .filter(pk=judgment_id, annotator_id=annotator_id)
        .first()
    )
    if judgment is None:
        raise NotFound("No such judgment.")
    assignment = judgment.assignment
    project, now = assignment.item.project, timezone.now()
    if (now - judgment.created_at).total_seconds() > project.revise_window_seconds:
        raise ReviseWindowClosed(
            f"Judgments can be revised for {project.revise_window_seconds} seconds after they are made."
        )
    if assignment.item.batch.status != Batch.Status.OPEN:
        raise BatchClosed("This batch was closed.")
    # The item's row lock orders this with a judgment that would complete the item (it counts under the same lock):
    # either that judgment sees the revised vote, or this sees the item complete.
    item = Item.objects.select_for_update().get(pk=assignment.item_id)
    if item.withdrawn_at is not None:
        raise ItemWithdrawn("A lead withdrew this item; it is no longer judged.")
    if not item.gold and item.judgment_count - item.extra_judgments >= project.overlap:
        raise ItemComplete("This item already has all its judgments; its votes are final.")
    canonical, canonical_dims, justification = judgment_validated(
        assignment=assignment, choice=choice, dimensions=dimensions or {}, justification=justification
    )
    old = (judgment.choice, judgment.dimensions, judgment.justification)
    if old == (canonical, canonical_dims, justification):
        return judgment, None
    revision = JudgmentRevision.objects.create(
        judgment=judgment,
        old_choice=old[0],
        old_dimensions=old[1],
        old_justification=old[2],
        new_choice=canonical,
        new_dimensions=canonical_dims,
        new_justification=justification,
    )
    judgment.choice, judgment.dimensions, judgment.justification = canonical, canonical_dims, justification
    if judgment.is_gold:
        judgment.gold_correct = gold_matches(gold=item.gold, choice=canonical)
    judgment.revised_at = revision.created_at
    judgment.save(update_fields=["choice", "dimensions", "justification", "gold_correct", "revised_at"])
    return judgment, revision


@transaction.atomic
def items_withdraw(*, items: QuerySet) -> int:
    """Withdraws the items from their batch: served to nobody from now on (open leases on them end now), left out of
    dataset exports (rewards.services.pairs, reason "withdrawn"). Their judgments stay, for the record. The number
    newly withdrawn."""
    now = timezone.now()
    ids = list(items.filter(withdrawn_at__isnull=True).values_list("pk", flat=True))
    Item.objects.filter(pk__in=ids).update(withdrawn_at=now)
    _live(Assignment.objects.filter(item_id__in=ids), now).update(lease_expires_at=now)
    return len(ids)
