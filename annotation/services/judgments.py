"""Judgments: idempotent submit, canonical A/B storage, the overlap cap held by a conditional UPDATE."""

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Case, Count, F, Value, When
from django.db.models.functions import Least
from django.utils import timezone

from annotation.errors import BatchClosed, InvalidJudgment, JudgmentConflict, LeaseExpired, NotFound, OverlapFull
from annotation.models import AnnotationSession, Assignment, Batch, Item, Judgment
from annotation.rules import (
    DIMENSION_CHOICES,
    SIDE_CHOICES,
    gold_matches,
    needs_another_judgment,
    to_canonical,
    vote_decision,
)


def judgment_choices(*, project) -> list[str]:
    """The choices an annotator may send on this project, in the order the page offers them."""
    return [
        c for c in SIDE_CHOICES if (c != "tie" or project.allow_tie) and (c != "both_bad" or project.allow_both_bad)
    ]


@transaction.atomic
def judgment_submit(
    *,
    assignment_id: uuid.UUID,
    annotator: AbstractBaseUser,
    choice: str,
    dimensions: dict[str, str] | None = None,
    justification: str = "",
) -> tuple[Judgment, bool]:
    """Stores the annotator's judgment on their assignment; (judgment, created).

    The same request again returns the stored judgment (created False); a different one raises
    JudgmentConflict. An expired lease, a closed batch or an item already at its overlap raise 410 errors.
    """
    assignment = (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("item__project", "item__batch__criteria_version")
        .defer("item__prompt", "item__messages", "item__response_a_text", "item__response_b_text")
        .filter(pk=assignment_id, annotator=annotator)
        .first()
    )
    if assignment is None:
        raise NotFound("No such assignment.")
    item = assignment.item
    project = item.project
    canonical, canonical_dims, justification = _validated(
        assignment=assignment, choice=choice, dimensions=dimensions or {}, justification=justification
    )

    # The locked row is the latest version (FOR UPDATE waits for a concurrent submit and re-reads), so judged_at
    # says whether a judgment exists: a first submit, the common case, needs no query to find out.
    existing = Judgment.objects.filter(assignment=assignment).first() if assignment.judged_at else None
    if existing is not None:
        same = (existing.choice, existing.dimensions, existing.justification) == (
            canonical,
            canonical_dims,
            justification,
        )
        if same:
            return existing, False
        raise JudgmentConflict("This assignment already has a different judgment.")

    now = timezone.now()
    if now > assignment.lease_expires_at:
        raise LeaseExpired("The lease on this item expired; it went back to the pool.")
    if item.batch.status != Batch.Status.OPEN:
        raise BatchClosed("This batch was closed.")
    # Gold items have no overlap cap.
    counts = _count_judgment(item_id=item.pk, overlap=None if item.gold else project.overlap)
    if counts is None:
        raise OverlapFull("This item already has all the judgments it needs.")

    seconds = (now - assignment.leased_at).total_seconds()
    judgment = Judgment.objects.create(
        assignment=assignment,
        item=item,
        batch_id=item.batch_id,
        annotator=annotator,
        choice=canonical,
        shown_left="a" if assignment.left_is_a else "b",
        dimensions=canonical_dims,
        justification=justification,
        seconds=seconds,
        too_fast=seconds < project.min_seconds_per_judgment,
        is_gold=bool(item.gold),
        gold_correct=gold_matches(gold=item.gold, choice=canonical) if item.gold else None,
    )
    Assignment.objects.filter(pk=assignment.pk).update(judged_at=now)
    _count_task(session_id=assignment.session_id, now=now)
    if not item.gold:
        _maybe_extend_overlap(item=item, project=project, count=counts[0], extra=counts[1])
    return judgment, True


_COUNT_SQL = (
    "UPDATE annotation_item SET judgment_count = judgment_count + 1 WHERE id = %s {cap} "
    "RETURNING judgment_count, extra_judgments"
)


def _count_judgment(*, item_id: int, overlap: int | None) -> tuple[int, int] | None:
    """One more judgment on the item unless it would pass overlap + extra_judgments: the new (count, extra), or None.

    One conditional UPDATE holds the cap under concurrency (it takes the row lock and re-checks the condition on the
    current row), and RETURNING hands the adaptive-overlap check the new count without a second query; Django's
    update() returns no values, hence SQL. PostgreSQL and SQLite (3.35+) both support RETURNING.
    """
    with connection.cursor() as cursor:
        if overlap is None:
            cursor.execute(_COUNT_SQL.format(cap=""), [item_id])
        else:
            cursor.execute(_COUNT_SQL.format(cap="AND judgment_count < %s + extra_judgments"), [item_id, overlap])
        return cursor.fetchone()


def _maybe_extend_overlap(*, item: Item, project, count: int, extra: int) -> None:
    """Adaptive overlap: an item whose votes split when it reaches its count asks for one more, up to max_overlap.

    Runs only when the item completes (one judgment in `overlap`), under the row lock the count UPDATE took;
    count and extra are the values that UPDATE left.
    """
    wanted = project.overlap + extra
    if count < wanted or wanted >= project.max_overlap:
        return
    votes = dict(Judgment.objects.filter(item_id=item.pk).values_list("choice").annotate(n=Count("pk")))
    decision = vote_decision(
        a=votes.get("a", 0),
        b=votes.get("b", 0),
        tie=votes.get("tie", 0),
        both_bad=votes.get("both_bad", 0),
        tie_rule=item.batch.criteria_version.tie_rule,
        min_agreement=project.min_agreement,
    )
    if needs_another_judgment(decision):
        Item.objects.filter(pk=item.pk).update(extra_judgments=F("extra_judgments") + 1)


def _count_task(*, session_id: int, now) -> None:
    """One more task in the session; the one that reaches max_tasks ends it, and the break starts now.

    A single UPDATE (its right-hand sides read the row as it was), so concurrent submits cannot lose a count.
    """
    AnnotationSession.objects.filter(pk=session_id).update(
        tasks_done=Least(F("tasks_done") + 1, F("max_tasks")),
        ended_at=Case(
            When(ended_at__isnull=True, tasks_done__gte=F("max_tasks") - 1, then=Value(now)),
            default=F("ended_at"),
        ),
    )


def _validated(*, assignment: Assignment, choice: str, dimensions: dict, justification: str) -> tuple[str, dict, str]:
    project = assignment.item.project
    allowed = judgment_choices(project=project)
    if choice not in allowed:
        raise InvalidJudgment(f"choice must be one of {', '.join(allowed)}.", field="choice")
    keys = {d.get("key") for d in assignment.item.batch.criteria_version.dimensions}
    if not isinstance(dimensions, dict):
        raise InvalidJudgment("dimensions must be an object of dimension key → left/right/tie.", field="dimensions")
    unknown = sorted(set(dimensions) - keys)
    if unknown:
        raise InvalidJudgment(f"Unknown dimension(s): {', '.join(unknown)}.", field="dimensions")
    bad = sorted(k for k, v in dimensions.items() if v not in DIMENSION_CHOICES)
    if bad:
        raise InvalidJudgment(f"Dimension answers must be left, right or tie: {', '.join(bad)}.", field="dimensions")
    justification = (justification or "").strip()
    if project.require_justification and not justification:
        raise InvalidJudgment("This project asks for a justification.", field="justification")
    canonical_dims = {k: to_canonical(v, left_is_a=assignment.left_is_a) for k, v in sorted(dimensions.items())}
    return to_canonical(choice, left_is_a=assignment.left_is_a), canonical_dims, justification
