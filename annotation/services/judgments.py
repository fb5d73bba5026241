"""Judgments: idempotent submit, canonical A/B storage, the overlap cap held by a conditional UPDATE."""

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, F
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

    existing = Judgment.objects.filter(assignment=assignment).first()
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
    counted = Item.objects.filter(pk=item.pk)
    if not item.gold:  # gold items have no overlap cap
        counted = counted.filter(judgment_count__lt=project.overlap + F("extra_judgments"))
    if not counted.update(judgment_count=F("judgment_count") + 1):
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
        _maybe_extend_overlap(item=item, project=project)
    return judgment, True


def _maybe_extend_overlap(*, item: Item, project) -> None:
    """Adaptive overlap: an item whose votes split when it reaches its count asks for one more, up to max_overlap.

    Runs only when the item completes (one judgment in `overlap`), under the row lock the count UPDATE took.
    """
    count, extra = Item.objects.filter(pk=item.pk).values_list("judgment_count", "extra_judgments").get()
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
    session = AnnotationSession.objects.select_for_update().get(pk=session_id)
    session.tasks_done = min(session.tasks_done + 1, session.max_tasks)
    fields = ["tasks_done"]
    if session.tasks_done >= session.max_tasks and session.ended_at is None:
        session.ended_at = now  # the break starts now
        fields.append("ended_at")
    session.save(update_fields=fields)


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
