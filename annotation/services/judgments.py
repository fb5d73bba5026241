"""Judgments: idempotent submit, canonical A/B storage, the overlap cap held by a conditional UPDATE."""

import json
import uuid

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from annotation.errors import (
    BatchClosed,
    InvalidJudgment,
    JudgmentConflict,
    LeaseExpired,
    NotFound,
    OverlapFull,
    WrongTask,
)
from annotation.models import Assignment, Batch, CriteriaVersion, Item, Judgment, Project
from annotation.rules import (
    DIMENSION_CHOICES,
    SIDE_CHOICES,
    gold_matches,
    needs_another_judgment,
    to_canonical,
    vote_decision,
)
from annotation.services import rows
from annotation.signals import judgment_recorded


def judgment_choices(*, project) -> list[str]:
    """The choices an annotator may send on this project, in the order the page offers them."""
    return [
        c for c in SIDE_CHOICES if (c != "tie" or project.allow_tie) and (c != "both_bad" or project.allow_both_bad)
    ]


def judgment_submit(
    *,
    assignment_id: uuid.UUID,
    annotator_id: int,
    choice: str,
    dimensions: dict[str, str] | None = None,
    justification: str = "",
) -> tuple[Judgment, bool]:
    """Stores the judgment of the annotator (by user id) on their assignment; (judgment, created).

    The same request again returns the stored judgment (created False); a different one raises
    JudgmentConflict. An expired lease, a closed batch or an item already at its overlap raise 410 errors.
    On PostgreSQL the writes are one call of tandem_record_judgment (annotation/sql/annotator_loop_v1.sql), after
    one read; on SQLite the same steps run here, in a serialised transaction.
    """
    submit = _submit_in_one_statement if connection.vendor == "postgresql" else _submit_serialised
    judgment, created = submit(
        assignment_id=assignment_id,
        annotator_id=annotator_id,
        choice=choice,
        dimensions=dimensions or {},
        justification=justification,
    )
    if created and judgment.pk % max(1, settings.TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS) == 0:
        judgment_recorded.send(sender=Judgment, judgment=judgment)
    return judgment, created


@transaction.atomic
def _submit_serialised(*, assignment_id, annotator_id, choice, dimensions, justification) -> tuple[Judgment, bool]:
    # The locked row is the latest version (FOR UPDATE waits for a concurrent submit and re-reads), so judged_at
    # says whether a judgment exists: a first submit, the common case, needs no query to find out.
    assignment = _locked_assignment(assignment_id=assignment_id, annotator_id=annotator_id)
    judgment, new = _first_checks(assignment, choice=choice, dimensions=dimensions, justification=justification)
    if not new:
        return judgment, False
    item, project, now = assignment.item, assignment.item.project, judgment.created_at
    # Gold items have no overlap cap.
    counts = _count_judgment(item_id=item.pk, overlap=None if item.gold else project.overlap)
    if counts is None:
        raise OverlapFull(_OVERLAP_FULL)

    judgment = rows.insert(judgment)
    Assignment.objects.filter(pk=assignment.pk).update(judged_at=now)
    _count_task(session_id=assignment.session_id, now=now)
    if not item.gold and _completes(item=item, project=project, count=counts[0], extra=counts[1]):
        votes = dict(Judgment.objects.filter(item_id=item.pk).values_list("choice").annotate(n=Count("pk")))
        _maybe_extend_overlap(item=item, project=project, extra=counts[1], votes=votes)
    return judgment, True


def _submit_in_one_statement(
    *, assignment_id, annotator_id, choice, dimensions, justification
) -> tuple[Judgment, bool]:
    """One read (the assignment and what validates the answer), then tandem_record_judgment: locks, checks and
    the four writes in one statement, so no BEGIN and COMMIT of its own. The read is not locked: the function
    re-checks, under the lock, everything the read could have seen go stale."""
    assignment = _assignment(assignment_id=assignment_id, annotator_id=annotator_id, lock=False)
    judgment, new = _first_checks(assignment, choice=choice, dimensions=dimensions, justification=justification)
    if not new:
        return judgment, False
    item, project, now = assignment.item, assignment.item.project, judgment.created_at
    params = [
        Assignment._meta.pk.get_db_prep_value(assignment.pk, connection),
        assignment.annotator_id,
        connection.ops.adapt_datetimefield_value(now),
        judgment.choice,
        judgment.shown_left,
        Judgment._meta.get_field("dimensions").get_db_prep_save(judgment.dimensions, connection),
        judgment.justification,
        judgment.seconds,
        judgment.too_fast,
        judgment.is_gold,
        judgment.gold_correct,
        None if item.gold else project.overlap,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_JUDGMENT_SQL, params)
        status, judgment_id, _count, extra, votes = cursor.fetchone()
    if status != "created":
        if status == "exists":  # a concurrent submit of the same assignment got there first
            return _stored(assignment, judgment.choice, judgment.dimensions, judgment.justification), False
        raise _REFUSALS[status]()
    judgment.pk = judgment_id
    judgment._state.adding, judgment._state.db = False, connection.alias
    if votes is not None:
        # The item is complete (the function read its votes under the count's row lock). Another judgment, if
        # the votes split, is one more statement: extra_judgments moves only if no one moved it since.
        # Django has psycopg hand jsonb over as text, for JSONField to decode.
        _maybe_extend_overlap(item=item, project=project, extra=extra, votes=json.loads(votes))
    return judgment, True


_NOT_FOUND = "No such assignment."
_LEASE_EXPIRED = "The lease on this item expired; it went back to the pool."
_BATCH_CLOSED = "This batch was closed."
_OVERLAP_FULL = "This item already has all the judgments it needs."
NOT_A_COMPARISON = "This item asks for a written response, not a judgment: send it to the demonstration endpoint."
_REFUSALS = {
    "not_found": lambda: NotFound(_NOT_FOUND),
    "lease_expired": lambda: LeaseExpired(_LEASE_EXPIRED),
    "batch_closed": lambda: BatchClosed(_BATCH_CLOSED),
    "overlap_full": lambda: OverlapFull(_OVERLAP_FULL),
}
_RECORD_JUDGMENT_SQL = "SELECT * FROM tandem_record_judgment(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"


def _first_checks(assignment: Assignment | None, *, choice, dimensions, justification) -> tuple[Judgment, bool]:
    """What both paths check before they write: the assignment is the annotator's, the answer fits its criteria and
    project, and, for a first submit, the lease is live and the batch open.

    (the stored judgment, False) for a retried submit; else (the new judgment, unsaved, True). Raises otherwise.
    """
    if assignment is None:
        raise NotFound(_NOT_FOUND)
    if assignment.item.batch.kind == Batch.Kind.DEMONSTRATION:
        raise WrongTask(NOT_A_COMPARISON)
    canonical, canonical_dims, justification = _validated(
        assignment=assignment, choice=choice, dimensions=dimensions, justification=justification
    )
    if assignment.judged_at:
        return _stored(assignment, canonical, canonical_dims, justification), False
    now = timezone.now()
    if now > assignment.lease_expires_at:
        raise LeaseExpired(_LEASE_EXPIRED)
    if assignment.item.batch.status != Batch.Status.OPEN:
        raise BatchClosed(_BATCH_CLOSED)
    return _new_judgment(assignment, canonical, canonical_dims, justification, now), True


def _stored(assignment: Assignment, canonical: str, canonical_dims: dict, justification: str) -> Judgment:
    """The assignment's stored judgment, if it is this one: a retried submit. A different answer is a conflict."""
    existing = Judgment.objects.filter(assignment=assignment).first()
    if existing is None:  # judged_at without a judgment: not something the loop leaves behind
        raise JudgmentConflict("This assignment already has a different judgment.")
    if (existing.choice, existing.dimensions, existing.justification) != (canonical, canonical_dims, justification):
        raise JudgmentConflict("This assignment already has a different judgment.")
    return existing


def _new_judgment(assignment: Assignment, canonical: str, canonical_dims: dict, justification: str, now) -> Judgment:
    item, project = assignment.item, assignment.item.project
    seconds = (now - assignment.leased_at).total_seconds()
    return Judgment(
        assignment=assignment,
        item=item,
        batch_id=item.batch_id,
        annotator_id=assignment.annotator_id,
        choice=canonical,
        shown_left="a" if assignment.left_is_a else "b",
        dimensions=canonical_dims,
        justification=justification,
        seconds=seconds,
        too_fast=seconds < project.min_seconds_per_judgment,
        is_gold=bool(item.gold),
        gold_correct=gold_matches(gold=item.gold, choice=canonical) if item.gold else None,
        created_at=now,
    )


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


def _completes(*, item: Item, project, count: int, extra: int) -> bool:
    """Whether a regular item's count (after this judgment) reaches its overlap + extra judgments, below
    max_overlap: only then can its votes ask for one more."""
    wanted = project.overlap + extra
    return count >= wanted and wanted < project.max_overlap


def _maybe_extend_overlap(*, item: Item, project, extra: int, votes: dict[str, int]) -> None:
    """Adaptive overlap: an item whose votes split when it completes asks for one more, up to max_overlap.

    Runs only when the item completes (one judgment in `overlap`), with the item's votes by canonical choice and
    the extra_judgments the count left. The UPDATE moves extra_judgments only from that value, so a second
    completion seen twice cannot ask twice.
    """
    if project.overlap + extra >= project.max_overlap:
        return
    decision = vote_decision(
        a=votes.get("a", 0),
        b=votes.get("b", 0),
        tie=votes.get("tie", 0),
        both_bad=votes.get("both_bad", 0),
        tie_rule=item.batch.criteria_version.tie_rule,
        min_agreement=project.min_agreement,
    )
    if needs_another_judgment(decision):
        Item.objects.filter(pk=item.pk, extra_judgments=extra).update(extra_judgments=F("extra_judgments") + 1)


def _count_task(*, session_id: int, now) -> None:
    """One more task in the session; the one that reaches max_tasks ends it, and the break starts now.

    A single UPDATE (its right-hand sides read the row as it was), so concurrent submits cannot lose a count.
    """
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_TASK_SQL, [connection.ops.adapt_datetimefield_value(now), session_id])


# The rest of the hot path in SQL: building the equivalent ORM statements (a four-table select_related, an UPDATE of
# CASE expressions) cost more CPU than running them. PostgreSQL and SQLite both run these.

# The assignment, to be locked, with its item (without the texts), batch, criteria version and project.
# Only the columns a submit reads; the rest load if touched.
_ITEM_FIELDS = ("id", "project_id", "batch_id", "gold", "judgment_count", "extra_judgments")
_BATCH_FIELDS = ("id", "criteria_version_id", "status", "kind")
_CRITERIA_FIELDS = ("id", "dimensions", "tie_rule")
_PROJECT_FIELDS = (
    "id",
    "overlap",
    "max_overlap",
    "min_agreement",
    "allow_tie",
    "allow_both_bad",
    "require_justification",
    "min_seconds_per_judgment",
)
_ASSIGNMENT_SQL = f"""
SELECT {rows.columns(Assignment, "assignment")}, {rows.columns(Item, "item", _ITEM_FIELDS)},
       {rows.columns(Batch, "batch", _BATCH_FIELDS)}, {rows.columns(CriteriaVersion, "criteria", _CRITERIA_FIELDS)},
       {rows.columns(Project, "project", _PROJECT_FIELDS)}
FROM annotation_assignment assignment
JOIN annotation_item item ON item.id = assignment.item_id
JOIN annotation_batch batch ON batch.id = item.batch_id
JOIN annotation_criteriaversion criteria ON criteria.id = batch.criteria_version_id
JOIN annotation_project project ON project.id = item.project_id
WHERE assignment.id = %s AND assignment.annotator_id = %s
"""  # noqa: S608 (column names from the models, no input)
_LOCK_ASSIGNMENT = "FOR UPDATE OF assignment"

_COUNT_TASK_SQL = """
UPDATE annotation_annotationsession
SET tasks_done = CASE WHEN tasks_done < max_tasks THEN tasks_done + 1 ELSE tasks_done END,
    ended_at = CASE WHEN ended_at IS NULL AND tasks_done + 1 >= max_tasks THEN %s ELSE ended_at END
WHERE id = %s
"""


def _locked_assignment(*, assignment_id, annotator_id: int) -> Assignment | None:
    """The annotator's assignment, row-locked, with its item, batch, criteria and project attached (the columns a
    submit reads; the others, the texts among them, load if touched).

    The related rows are not locked: what decides a submit on them is re-checked by the count UPDATE.
    """
    return _assignment(assignment_id=assignment_id, annotator_id=annotator_id, lock=True)


def _assignment(*, assignment_id, annotator_id, lock: bool) -> Assignment | None:
    sql = _ASSIGNMENT_SQL
    sql += _LOCK_ASSIGNMENT if lock and connection.features.has_select_for_update_of else ""
    found = rows.fetch(sql, [Assignment._meta.pk.get_db_prep_value(assignment_id, connection), annotator_id])
    if not found:
        return None
    row = found[0]
    assignment = rows.instance(Assignment, row, "assignment")
    item = rows.instance(Item, row, "item", _ITEM_FIELDS)
    batch = rows.instance(Batch, row, "batch", _BATCH_FIELDS)
    batch.criteria_version = rows.instance(CriteriaVersion, row, "criteria", _CRITERIA_FIELDS)
    item.batch, item.project, assignment.item = batch, rows.instance(Project, row, "project", _PROJECT_FIELDS), item
    return assignment


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
