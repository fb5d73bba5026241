"""The assignment engine: lease the next item to an annotator, never past the item's overlap.

Guarantees live in the database. On PostgreSQL the whole step is one call of tandem_lease_next
(annotation/sql/annotator_loop_v5.sql): the session row locked, candidate items locked with FOR UPDATE SKIP LOCKED
and their open leases recounted under the lock, so two annotators cannot both take an item's last slot. On SQLite
the same steps run here in Python, in a transaction that is IMMEDIATE, which serialises this path. A unique
(item, annotator) constraint stops one annotator seeing an item twice. An expired lease simply stops counting: no
periodic job has to free it. The random draws are made here, with a cryptographic RNG, on both.

Serving order: within a batch, every item the annotator may take is equally likely, whatever its votes or progress
(issue 11: "closest to complete first" served the items others had disagreed on first, since adaptive overlap
leaves exactly those one judgment short). Ids are drawn uniformly from the span of the batch's ids still short of
judgments, and the first draw that lands on an item the annotator may take wins; when every draw misses, one of the
listed open items is taken from a drawn place. annotator_loop_v2.sql explains why no shared order can do this.

Session kinds (issue 15): a comparison session is served comparison and evaluation batches (qualification ones
through annotation.services.qualification), never demonstration batches or labelled sources; a demonstration session
only the regular items of open demonstration batches, by the same steps with the batch's writers_per_item in place of
the project's overlap (a written demonstration moves judgment_count as a judgment does), without gold and without the
qualification gate (what is written is reviewed by a lead instead). On PostgreSQL tandem_lease_next answers 'python'
for a demonstration session and the steps below serve it.
"""

import random
import time
import uuid
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from annotation.errors import NotFound, NotQualified, SessionLimit
from annotation.models import AnnotationSession, Assignment, Batch, CriteriaVersion, Item, Project
from annotation.rules import draw_left_is_a
from annotation.services import rows
from annotation.services.qualification import QUALIFIED, qualification_lease

_crypto = random.SystemRandom()
# Rows locked per try: enough to get past a lease committed since the query's snapshot, few enough that
# concurrent requests skip little of the queue's head.
_CANDIDATES = 4
# Tries before answering "nothing left" while every candidate is locked by someone else (a batch's last items).
_TRIES = 5
# Uniform draws over a batch's span of ids per lease: with a share f of the span open to the annotator, all miss with
# probability (1 - f) ** 32 (3 % at f = 0.1), and only then is the batch's open list read. Each draw is 62 bits, so
# "draw % span" is uniform to within span / 2**62.
_PROBES = 32
_DRAW_BITS = 62
_TASK_LIMIT = "You have reached this session's task limit."
_TIME_LIMIT = "This session's time is up."
# Batches a comparison session is never served live work from (annotator_loop_v5.sql lists the same kinds).
_NOT_COMPARISON_WORK = (Batch.Kind.QUALIFICATION.value, Batch.Kind.DEMONSTRATION.value, Batch.Kind.LABELLED.value)


class NotComparisonSession(Exception):
    """assignment_next_for(comparison_only=True) on a session of another kind: nothing was read past the session."""


def slots_per_item(*, batch: Batch, project: Project) -> int:
    """How many annotators an item of the batch is for, before adaptive overlap: the batch's writers_per_item for a
    demonstration batch, the project's overlap for the others."""
    return batch.writers_per_item if batch.kind == Batch.Kind.DEMONSTRATION else project.overlap


def assignment_next(*, session: AnnotationSession) -> Assignment | None:
    """The session's open lease if it has one, else a new lease, else None when nothing is left.

    Raises SessionLimit when the session's tasks or minutes are used up.
    """
    return _next_for(session_id=session.pk, annotator_id=session.annotator_id)[1]


def assignment_next_for(
    *, session_id: int, annotator_id: int, comparison_only: bool = False
) -> tuple[AnnotationSession, Assignment | None]:
    """assignment_next for the session with this id of the annotator with this user id (NotFound otherwise).

    The session comes back with its project. On PostgreSQL both hold only what the page shows (other fields load
    if touched), and the session's counts are as they were when the call began. With comparison_only, a session of
    another kind raises NotComparisonSession before anything is leased (the fast path hands those to DRF).
    """
    # The ORM answers "no rows" for an id past the column's range; the SQL below would overflow the driver.
    if not -(2**63) <= session_id < 2**63:
        raise NotFound("No such session.")
    return _next_for(session_id=session_id, annotator_id=annotator_id, comparison_only=comparison_only)


def _next_for(
    *, session_id: int, annotator_id: int, comparison_only: bool = False
) -> tuple[AnnotationSession, Assignment | None]:
    if connection.vendor == "postgresql":
        return _next_in_one_statement(session_id=session_id, annotator_id=annotator_id, comparison_only=comparison_only)
    return _next_in_python(session_id=session_id, annotator_id=annotator_id, comparison_only=comparison_only)


def _next_in_python(
    *, session_id: int, annotator_id: int, comparison_only: bool = False
) -> tuple[AnnotationSession, Assignment | None]:
    """The steps below in one transaction, the session's row locked."""
    with transaction.atomic():
        session = _locked_session(pk=session_id, annotator_id=annotator_id)
        if session is None:
            raise NotFound("No such session.")
        if comparison_only and session.kind != AnnotationSession.Kind.COMPARISON:
            raise NotComparisonSession
        try:
            return session, _next(session)
        except NotQualified as exc:
            refusal = exc  # raised once the transaction has committed: a failed attempt's score is kept
    raise refusal


def _next_in_one_statement(
    *, session_id: int, annotator_id: int, comparison_only: bool = False
) -> tuple[AnnotationSession, Assignment | None]:
    """tandem_lease_next, with the session, project, item, batch and criteria read in the same statement."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    draws = [_crypto.random(), _crypto.random(), draw_left_is_a(), uuid.uuid4()]
    params = [session_id, annotator_id, now, *draws, _CANDIDATES, _TRIES, _order_draws(), session_id]
    found = rows.fetch(_LEASE_NEXT_SQL, params)
    row = found[0]
    status = row["lease__status"]
    if status == "not_found":
        raise NotFound("No such session.")
    if status == "qualify":
        # Not qualified yet on a project that requires it: the Python steps, which serve qualification items first.
        return _next_in_python(session_id=session_id, annotator_id=row["session__annotator_id"])
    if status == "python":
        # Not a comparison session (a demonstration one): the Python steps serve it.
        if comparison_only:
            raise NotComparisonSession
        return _next_in_python(session_id=session_id, annotator_id=row["session__annotator_id"])
    if status == "task_limit":
        raise SessionLimit(_TASK_LIMIT)
    if status == "time_limit":
        raise SessionLimit(_TIME_LIMIT)
    session = rows.instance(AnnotationSession, row, "session", _SESSION_SHOWN)
    session.project = rows.instance(Project, row, "project", _PROJECT_SHOWN)
    if status == "empty":
        return session, None
    assignment = rows.instance(Assignment, row, "assignment")
    item = rows.instance(Item, row, "item", _ITEM_SHOWN)
    item.batch = rows.instance(Batch, row, "batch", _BATCH_SHOWN)
    item.batch.criteria_version = rows.instance(CriteriaVersion, row, "criteria", _CRITERIA_SHOWN)
    assignment.session, assignment.item = session, item
    return session, assignment


def _order_draws() -> list[int]:
    """_PROBES uniform draws over a batch's span of ids, and one for a place in its open list: one RNG call."""
    bits, mask = _crypto.getrandbits(_DRAW_BITS * (_PROBES + 1)), (1 << _DRAW_BITS) - 1
    return [(bits >> (_DRAW_BITS * n)) & mask for n in range(_PROBES + 1)]


def _locked_session(*, pk: int, annotator_id: int | None = None) -> AnnotationSession | None:
    """The session with its project; its row locked, so one request at a time per session keeps "one open lease
    per session" true under concurrent tabs. Only the session's row: locking the project's too would serialise
    every annotator of the project."""
    sql, params = _SESSION_SQL, [pk]
    if annotator_id is not None:
        sql, params = sql + " AND session.annotator_id = %s", [pk, annotator_id]
    if connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF session"
    found = rows.fetch(sql, params)
    if not found:
        return None
    session = rows.instance(AnnotationSession, found[0], "session")
    session.project = rows.instance(Project, found[0], "project")
    return session


def _next(session: AnnotationSession) -> Assignment | None:
    now = timezone.now()
    if session.tasks_done >= session.max_tasks:
        raise SessionLimit(_TASK_LIMIT)
    demonstration = session.kind == AnnotationSession.Kind.DEMONSTRATION
    # The qualification gate is for judging: a demonstration session is not held by it (leads review what is written).
    if session.project.qualification_required and not demonstration:
        qualifying = qualification_lease(session=session, now=now)
        if qualifying is not QUALIFIED:
            return qualifying
    open_lease = _open_lease(session, now)
    if (
        open_lease is not None
        and open_lease.item.batch.status == Batch.Status.OPEN
        and open_lease.item.withdrawn_at is None
    ):
        return open_lease  # a reload gets the same item, even in the session's last minute
    if now >= session.expires_at:
        raise SessionLimit(_TIME_LIMIT)

    project = session.project
    if demonstration:
        item = _lease_regular(session, now)  # no gold: a written answer has no right one to check against
    else:
        want_gold = project.gold_rate > 0 and _crypto.random() < project.gold_rate
        # A gold draw falls back to a regular item; a regular draw never falls back to gold, so gold stays a sample.
        item = (_lease_gold(session) if want_gold else None) or _lease_regular(session, now)
    if item is None:
        return None
    return rows.insert(
        Assignment(
            session=session,
            item=item,
            annotator_id=session.annotator_id,
            left_is_a=draw_left_is_a(),
            leased_at=now,
            lease_expires_at=now + timedelta(minutes=project.lease_minutes),
        )
    )


def _open_lease(session: AnnotationSession, now: datetime) -> Assignment | None:
    with connection.cursor() as cursor:
        cursor.execute(_OPEN_LEASE_SQL, [session.pk, connection.ops.adapt_datetimefield_value(now)])
        row = cursor.fetchone()
    if row is None:  # the common case, answered without building an ORM query
        return None
    return Assignment.objects.select_related("item__batch__criteria_version").get(pk=row[0])


def _unseen(annotator_id: int) -> Exists:
    return Exists(Assignment.objects.filter(item=OuterRef("pk"), annotator_id=annotator_id))


def _lease_gold(session: AnnotationSession) -> Item | None:
    # Gold items have no overlap cap: every annotator may meet each one once.
    open_gold = (
        Item.objects.filter(
            project_id=session.project_id, batch__status=Batch.Status.OPEN, gold__gt="", withdrawn_at__isnull=True
        )
        .exclude(batch__kind__in=_NOT_COMPARISON_WORK)  # never live work of a comparison session
        .exclude(_unseen(session.annotator_id))
    )
    ids = list(open_gold.values_list("pk", flat=True)[:500])
    if not ids:
        return None
    return Item.objects.select_related("batch__criteria_version").get(pk=_crypto.choice(ids))


def _lease_regular(session: AnnotationSession, now: datetime) -> Item | None:
    # Oldest open batch first, so batches finish one after another.
    draws = _order_draws()
    sql = _OPEN_DEMONSTRATION_BATCHES_SQL if session.kind == AnnotationSession.Kind.DEMONSTRATION else _OPEN_BATCHES_SQL
    for row in rows.fetch(sql, [session.project_id, Batch.Status.OPEN.value]):
        batch = rows.instance(Batch, row, "batch")
        batch.criteria_version = rows.instance(CriteriaVersion, row, "criteria")
        item = _lease_in_batch(session, batch, now, draws)
        if item is not None:
            item.batch = batch
            return item
    return None


def _lease_in_batch(session: AnnotationSession, batch: Batch, now: datetime, draws: list[int]) -> Item | None:
    """A uniform pick among the batch's items this annotator may take (the steps of tandem_lease_next)."""
    lock = _SKIP_LOCKED if connection.features.has_select_for_update_skip_locked else ""
    overlap = slots_per_item(batch=batch, project=session.project)
    params = {
        "batch": batch.pk,
        "annotator": session.annotator_id,
        "overlap": overlap,
        "now": connection.ops.adapt_datetimefield_value(now),
        "limit": _CANDIDATES,
        **{f"d{n}": draw for n, draw in enumerate(draws[:_PROBES])},
    }
    for attempt in range(_TRIES):
        # Uniform draws over the span of ids short of judgments; the first that lands on an item to take wins.
        item = _first_with_free_slot(_candidates(_PROBE_SQL + lock, params), overlap, now)
        if item is not None:
            return item
        # Every draw missed: the open items, from a drawn place in their list onwards.
        open_ids = [row[0] for row in _fetch_ids(_OPEN_SQL, params)]
        if not open_ids:
            return None  # nothing free, not even behind someone else's lock
        start = draws[_PROBES] % len(open_ids)
        picks = (open_ids[start:] + open_ids[:start])[:_CANDIDATES]
        picks += picks[-1:] * (_CANDIDATES - len(picks))  # the statement takes exactly _CANDIDATES ids
        pick_params = {**params, **{f"c{n}": pk for n, pk in enumerate(picks)}}
        item = _first_with_free_slot(_candidates(_PICK_SQL + lock, pick_params), overlap, now)
        if item is not None:
            return item
        time.sleep(0.002 * (attempt + 1))  # the free rows are locked by requests about to commit
    return None


def _candidates(sql: str, params: dict) -> list[Item]:
    return [rows.instance(Item, row, "item") for row in rows.fetch(sql, params)]


def _fetch_ids(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _first_with_free_slot(items: list[Item], overlap: int, now: datetime) -> Item | None:
    """Recounts leases under the row locks: the queue's snapshot may predate a lease committed since.

    The locked rows themselves are current (FOR UPDATE returns the latest version), so only leases need a recount.
    """
    if not items:
        return None
    ids = [i.pk for i in items] + [items[0].pk] * (_CANDIDATES - len(items))
    with connection.cursor() as cursor:
        cursor.execute(_RECOUNT_SQL, [*ids, connection.ops.adapt_datetimefield_value(now)])
        leases = dict(cursor.fetchall())
    for item in items:
        if item.judgment_count - item.extra_judgments + leases.get(item.pk, 0) < overlap:
            return item
    return None


# What the page shows of a lease (annotation.annotator_apis.next_payload), read with it.
_SESSION_SHOWN = ("id", "project_id", "annotator_id", "kind")
_PROJECT_SHOWN = ("id", "allow_tie", "allow_both_bad", "require_justification")
_ITEM_SHOWN = ("id", "project_id", "batch_id", "prompt", "messages", "response_a_text", "response_b_text")
_BATCH_SHOWN = ("id", "criteria_version_id")
_CRITERIA_SHOWN = ("id", "number", "dimensions")

# The columns of tandem_lease_next's answer, joined to what the page shows. The joined rows already existed when the
# statement began, so its snapshot sees them; the new assignment it does not, hence the function's own columns.
_LEASE_NEXT_SQL = f"""
SELECT lease.status AS lease__status,
       lease.assignment_id AS assignment__id, session.id AS assignment__session_id,
       lease.item_id AS assignment__item_id, session.annotator_id AS assignment__annotator_id,
       lease.left_is_a AS assignment__left_is_a, lease.leased_at AS assignment__leased_at,
       lease.lease_expires_at AS assignment__lease_expires_at, NULL::timestamptz AS assignment__judged_at,
       NULL::timestamptz AS assignment__skipped_at, NULL::varchar AS assignment__skip_reason,
       {rows.columns(AnnotationSession, "session", _SESSION_SHOWN)}, {rows.columns(Project, "project", _PROJECT_SHOWN)},
       {rows.columns(Item, "item", _ITEM_SHOWN)}, {rows.columns(Batch, "batch", _BATCH_SHOWN)},
       {rows.columns(CriteriaVersion, "criteria", _CRITERIA_SHOWN)}
FROM tandem_lease_next(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::bigint[]) lease
LEFT JOIN annotation_annotationsession session ON session.id = %s
LEFT JOIN annotation_project project ON project.id = session.project_id
LEFT JOIN annotation_item item ON item.id = lease.item_id
LEFT JOIN annotation_batch batch ON batch.id = item.batch_id
LEFT JOIN annotation_criteriaversion criteria ON criteria.id = batch.criteria_version_id
"""  # noqa: S608 (column names from the models, no input)

# The hot path's reads are written out in SQL: building the equivalent ORM queries cost more CPU than running
# them (about 3 ms of the 4 a `next` spent in Python, measured under bench/annotator_loop.py). Both PostgreSQL
# and SQLite run them; only the row locks are PostgreSQL's.

_SESSION_SQL = f"""
SELECT {rows.columns(AnnotationSession, "session")}, {rows.columns(Project, "project")}
FROM annotation_annotationsession session JOIN annotation_project project ON project.id = session.project_id
WHERE session.id = %s
"""  # noqa: S608 (column names from the models, no input)

_OPEN_BATCHES_SQL = f"""
SELECT {rows.columns(Batch, "batch")}, {rows.columns(CriteriaVersion, "criteria")}
FROM annotation_batch batch JOIN annotation_criteriaversion criteria ON criteria.id = batch.criteria_version_id
WHERE batch.project_id = %s AND batch.status = %s AND batch.kind NOT IN {_NOT_COMPARISON_WORK!r}
ORDER BY batch.created_at, batch.id
"""  # noqa: S608 (column names from the models, no input)
# A demonstration session's batches, in the same order.
_OPEN_DEMONSTRATION_BATCHES_SQL = f"""
SELECT {rows.columns(Batch, "batch")}, {rows.columns(CriteriaVersion, "criteria")}
FROM annotation_batch batch JOIN annotation_criteriaversion criteria ON criteria.id = batch.criteria_version_id
WHERE batch.project_id = %s AND batch.status = %s AND batch.kind = '{Batch.Kind.DEMONSTRATION.value}'
ORDER BY batch.created_at, batch.id
"""  # noqa: S608 (column names from the models, no input)

_OPEN_LEASE_SQL = """
SELECT id FROM annotation_assignment
WHERE session_id = %s AND judged_at IS NULL AND lease_expires_at > %s
LIMIT 1
"""

# An item of the batch that the annotator may take: regular, not withdrawn, short of judgments, not seen by them
# (a skipped assignment counts as seen), a slot free.
_MAY_TAKE = """
item.batch_id = %(batch)s AND item.gold = '' AND item.withdrawn_at IS NULL
  AND item.judgment_count - item.extra_judgments < %(overlap)s
  AND NOT EXISTS (
    SELECT 1 FROM annotation_assignment seen WHERE seen.item_id = item.id AND seen.annotator_id = %(annotator)s
  )
  AND item.judgment_count - item.extra_judgments + (
    SELECT COUNT(*) FROM annotation_assignment lease
    WHERE lease.item_id = item.id AND lease.judged_at IS NULL AND lease.lease_expires_at > %(now)s
  ) < %(overlap)s
"""
# The draws over the span of the batch's ids short of judgments (the lowest and highest id under each queue key below
# the overlap: two probes of the item_queue index per key, written as annotator_loop_v2.sql explains), in the order
# drawn. judgment_count - extra_judgments is models.ITEM_QUEUE_KEY, the index's key. Integer arithmetic only, so PostgreSQL and SQLite land on the same ids.
# CROSS JOIN keeps SQLite's planner from scanning the batch's queue and matching each item against the draws: the
# draws are the outer loop, each one a primary-key lookup.
_PROBE_SQL = f"""
WITH RECURSIVE queue_key(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM queue_key WHERE k + 1 < %(overlap)s),
span AS (
  SELECT
    MIN((SELECT i.id FROM annotation_item i
         WHERE i.batch_id = %(batch)s AND i.gold = '' AND i.judgment_count - i.extra_judgments <= queue_key.k
         ORDER BY i.judgment_count - i.extra_judgments DESC, i.id LIMIT 1)) AS lo,
    MAX((SELECT i.id FROM annotation_item i
         WHERE i.batch_id = %(batch)s AND i.gold = '' AND i.judgment_count - i.extra_judgments >= queue_key.k
           AND i.judgment_count - i.extra_judgments < %(overlap)s
         ORDER BY i.judgment_count - i.extra_judgments, i.id DESC LIMIT 1)) AS hi
  FROM queue_key
),
probe(n, draw) AS (VALUES {", ".join(f"({n}, %(d{n})s)" for n in range(_PROBES))})
SELECT {rows.columns(Item, "item")}
FROM probe CROSS JOIN span CROSS JOIN annotation_item item
WHERE item.id = span.lo + probe.draw %% (span.hi - span.lo + 1) AND {_MAY_TAKE}
ORDER BY probe.n
LIMIT %(limit)s
"""  # noqa: S608 (column names from the model, no input)
# The items the annotator may take, when every draw missed: their ids, then _PICK_SQL for those from the drawn place.
_OPEN_SQL = f"SELECT item.id FROM annotation_item item WHERE {_MAY_TAKE} ORDER BY item.id"  # noqa: S608 (no input)
_PICK_SQL = f"""
WITH pick(n, id) AS (VALUES {", ".join(f"({n}, %(c{n})s)" for n in range(_CANDIDATES))})
SELECT {rows.columns(Item, "item")} FROM pick CROSS JOIN annotation_item item
WHERE item.id = pick.id AND {_MAY_TAKE}
ORDER BY pick.n
LIMIT %(limit)s
"""  # noqa: S608 (column names from the model, no input)
_SKIP_LOCKED = "FOR UPDATE OF item SKIP LOCKED"

_RECOUNT_SQL = (
    "SELECT item_id, COUNT(*) FROM annotation_assignment "  # noqa: S608 (placeholders only, no input)
    f"WHERE item_id IN ({', '.join(['%s'] * _CANDIDATES)}) AND judged_at IS NULL AND lease_expires_at > %s "
    "GROUP BY item_id"
)
