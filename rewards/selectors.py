"""Reads for rewards: a batch's judgments as rewards.metrics.Judgments, the stored snapshots, per-item votes
(also as a stream for export), and dataset snapshots with their files."""

import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, F, Func, JSONField, OuterRef, Q, Subquery

from annotation.models import Batch, Item, Judgment, Project
from annotation.selectors import judged_batches
from rewards.metrics import Judgments, longer_side
from rewards.metrics.flags import FlagRules
from rewards.models import AgreementSnapshot, DatasetSnapshot, ProjectFlagRules, SplitItem

LABELS = ("a", "b", "tie", "both_bad")
LABEL_CODE = {label: code for code, label in enumerate(LABELS)}
GOLD_CODE = {"": -1, "a": 0, "b": 1, "tie": 2}


@dataclass(frozen=True)
class BatchJudgments:
    """A batch's judgments for rewards.metrics, with the database ids behind the dense indices.

    annotator_ids[k] is the user id of annotator index k; item_ids[i] the id of item index i; hours[j] the hour
    judgment j was made in, as whole hours since the Unix epoch (UTC). Judgments are in the order they were made
    (created_at, id): Fleiss' kappa reads the first k of each item.
    """

    judgments: Judgments
    item_ids: np.ndarray
    annotator_ids: list[int]
    hours: np.ndarray


# One row per judgment, as numbers only: item, annotator, label code, A shown left, seconds, epoch hour. The label
# codes are rewards.metrics' (LABELS order); an unknown choice gives NULL, which fails the conversion loudly.
_LABEL_SQL = "CASE choice WHEN 'a' THEN 0 WHEN 'b' THEN 1 WHEN 'tie' THEN 2 WHEN 'both_bad' THEN 3 END"
_HOUR_SQL = {
    "postgresql": "FLOOR(EXTRACT(EPOCH FROM created_at) / 3600)::bigint",
    "sqlite": "CAST(strftime('%%s', created_at) AS INTEGER) / 3600",
}
# Judgments of withdrawn items (a lead took them out after reports: broken, harmful, out of scope) count nowhere: the
# subquery reads the few withdrawn ids from the partial index item_withdrawn.
_NOT_WITHDRAWN = "item_id NOT IN (SELECT id FROM annotation_item WHERE batch_id = {batch} AND withdrawn_at IS NOT NULL)"
_JUDGMENT_ROWS_SQL = (
    "SELECT item_id, annotator_id, {label}, CASE WHEN shown_left = 'a' THEN 1 ELSE 0 END, seconds, {hour} "
    "FROM annotation_judgment WHERE batch_id = {batch} AND " + _NOT_WITHDRAWN + " ORDER BY created_at, id"
)
_ITEM_FACTS_SQL = (
    "SELECT id, CASE gold WHEN 'a' THEN 0 WHEN 'b' THEN 1 WHEN 'tie' THEN 2 ELSE -1 END, "
    "LENGTH(response_a_text), LENGTH(response_b_text) FROM annotation_item WHERE batch_id = %s ORDER BY id"
)


def _judgment_rows(batch_id: int) -> np.ndarray:
    """The batch's judgment rows as a float64 array of 6 columns (ids stay exact below 2**53).

    On PostgreSQL the rows come through COPY ... TO STDOUT and NumPy's text parser: at a million judgments that is
    several times faster than building a million Python tuples through a cursor.
    """
    sql = _JUDGMENT_ROWS_SQL.format(label=_LABEL_SQL, hour=_HOUR_SQL[connection.vendor], batch=int(batch_id))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            buffer = io.BytesIO()
            with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT") as copy:  # batch id is an int: nothing to escape
                for block in copy:
                    buffer.write(block)
            if not buffer.tell():
                return np.zeros((0, 6))
            buffer.seek(0)
            return _parse_tsv(buffer, columns=6)
        cursor.execute(sql.replace("%%", "%"))
        rows = cursor.fetchall()
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def _parse_tsv(buffer: io.BytesIO, *, columns: int) -> np.ndarray:
    import pandas as pd  # only the worker computing snapshots needs it

    frame = pd.read_csv(buffer, sep="\t", header=None, dtype=np.float64, engine="c")
    return frame.to_numpy().reshape(-1, columns)


def batch_judgments(*, batch: Batch, annotator_index: dict[int, int] | None = None) -> BatchJudgments:
    """The batch as Judgments. annotator_index (user id -> index) fixes a shared index space across batches;
    users missing from it are appended to it, in user id order (it is updated in place)."""
    rows = _judgment_rows(batch.pk)
    item_db = rows[:, 0].astype(np.int64)
    item_ids, item_index = np.unique(item_db, return_inverse=True)
    annotator_db, annotator_inverse = np.unique(rows[:, 1].astype(np.int64), return_inverse=True)
    index = {} if annotator_index is None else annotator_index
    for user_id in annotator_db.tolist():
        index.setdefault(user_id, len(index))
    to_index = np.array([index[user_id] for user_id in annotator_db.tolist()], dtype=np.int64)

    with connection.cursor() as cursor:
        cursor.execute(_ITEM_FACTS_SQL, [batch.pk])
        facts = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 4)
    # Items are listed in id order, so each judged item's row is found by binary search.
    per_item = facts[np.searchsorted(facts[:, 0], item_ids)] if item_ids.size else np.zeros((0, 4), np.int64)
    judgments = Judgments(
        item=item_index.astype(np.int64).reshape(-1),
        annotator=to_index[annotator_inverse.reshape(-1)],
        label=rows[:, 2].astype(np.int64),
        n_items=len(item_ids),
        n_annotators=len(index),
        seconds=rows[:, 4].copy(),
        shown_left=rows[:, 3] == 1,
        gold=per_item[:, 1],
        longer=longer_side(per_item[:, 2], per_item[:, 3]),
        criteria=np.full(len(item_ids), batch.criteria_version.number, dtype=np.int64),
    )
    ordered = sorted(index, key=index.__getitem__)
    return BatchJudgments(
        judgments=judgments, item_ids=item_ids, annotator_ids=ordered, hours=rows[:, 5].astype(np.int64)
    )


DIMENSION_CODE = {"a": 0, "b": 1, "tie": 2}  # "na" (does not apply) is no vote on the dimension


def batch_dimension_votes(*, batch: Batch) -> dict[str, Judgments]:
    """Per criteria dimension, the batch's answers on regular items (not gold, not withdrawn) as Judgments with
    labels a / b / tie (annotation.rules stores them canonical); "does not apply" and missing answers are left out.
    Item and annotator indices are dense per dimension."""
    rows = (
        Judgment.objects.filter(batch_id=batch.pk, item__gold="", item__withdrawn_at__isnull=True)
        .exclude(dimensions={})
        .values_list("item_id", "annotator_id", "dimensions")
    )
    per_key: dict[str, list[tuple[int, int, int]]] = {}
    for item_id, annotator_id, dimensions in rows.iterator(chunk_size=5000):
        for key, answer in (dimensions or {}).items():
            code = DIMENSION_CODE.get(answer)
            if code is not None:
                per_key.setdefault(key, []).append((item_id, annotator_id, code))
    result = {}
    for key, votes in per_key.items():
        table = np.array(votes, dtype=np.int64)
        _, item = np.unique(table[:, 0], return_inverse=True)
        _, annotator = np.unique(table[:, 1], return_inverse=True)
        result[key] = Judgments.from_arrays(item=item.reshape(-1), annotator=annotator.reshape(-1), label=table[:, 2])
    return result


def usernames_for(*, user_ids: Sequence[int]) -> dict[int, str]:
    return dict(get_user_model().objects.filter(pk__in=list(user_ids)).values_list("pk", "username"))


def flag_rules_for(*, project: Project) -> FlagRules:
    """The project's flag rules, or the defaults when a lead has not changed them."""
    stored = ProjectFlagRules.objects.filter(project=project).values_list("rules", flat=True).first()
    return FlagRules.from_dict(stored or {})


def earlier_batches(*, batch: Batch) -> list[Batch]:
    """The project's batches created before this one, oldest first: the baseline a snapshot compares against.
    Labelled sources are no baseline: nobody judged them here."""
    return list(
        judged_batches(project=batch.project_id)
        .filter(Q(created_at__lt=batch.created_at) | Q(created_at=batch.created_at, pk__lt=batch.pk))
        .select_related("criteria_version")
        .order_by("created_at", "pk")
    )


class _ReportWithoutPairs(Func):
    """The stored report without "cohen_pairs", cut in the database: at 200 annotators that list is 19,900 rows
    (about 2 MB of JSON per snapshot) that pages, the API and baselines never read, and parsing it dominated them."""

    output_field = JSONField()

    def __init__(self):
        super().__init__(F("report"))

    def as_sql(self, compiler, connection, **extra):
        report, params = compiler.compile(self.source_expressions[0])
        return f"json_remove({report}, '$.cohen_pairs')", params

    def as_postgresql(self, compiler, connection, **extra):
        report, params = compiler.compile(self.source_expressions[0])
        return f"({report} - 'cohen_pairs')", params


def latest_snapshots(*, batches: Sequence[Batch], with_pairs: bool = False) -> dict[int, AgreementSnapshot]:
    """Batch id -> its most recent snapshot, for the batches that have one: one row per batch, found through the
    snapshot_latest_per_batch index however many refreshes a batch has had.

    Unless with_pairs, the report comes without "cohen_pairs" (the per-pair kappas); those instances are for
    reading only."""
    latest = AgreementSnapshot.objects.filter(batch=OuterRef("batch")).order_by("-computed_at", "-pk").values("pk")[:1]
    rows = AgreementSnapshot.objects.filter(batch__in=[b.pk for b in batches], pk=Subquery(latest)).order_by()
    if not with_pairs:
        rows = rows.defer("report").annotate(light_report=_ReportWithoutPairs())
    snapshots = {}
    for snapshot in rows:
        if not with_pairs:
            snapshot.report = snapshot.light_report
        snapshots[snapshot.batch_id] = snapshot
    return snapshots


def project_agreement(*, project: Project) -> list[tuple[Batch, AgreementSnapshot | None]]:
    """Every judged batch of the project with its latest snapshot (None before the first): what the dashboard
    reads. Labelled sources are left out: they have no judgments to agree on."""
    batches = list(judged_batches(project=project).select_related("criteria_version").order_by("created_at", "pk"))
    latest = latest_snapshots(batches=batches)
    return [(batch, latest.get(batch.pk)) for batch in batches]


def batches_due_for_snapshot(
    *, every_n: int, max_age_seconds: float, now: datetime, batch_ids: Sequence[int] | None = None
) -> list[int]:
    """Open batches (of batch_ids, if given) to snapshot now: judgments and no snapshot yet; or at least every_n
    judgments more than their last snapshot counted; or a last snapshot older than max_age_seconds and at least one
    judgment since."""
    open_batches = Batch.objects.filter(status=Batch.Status.OPEN)
    if batch_ids is not None:
        open_batches = open_batches.filter(pk__in=list(batch_ids))
    batches = list(open_batches.order_by("pk"))
    counts = dict(
        Judgment.objects.filter(batch__in=batches)
        .order_by()
        .values("batch_id")
        .annotate(n=Count("id"))
        .values_list("batch_id", "n")
    )
    latest = latest_snapshots(batches=batches)
    due = []
    for batch in batches:
        count, snapshot = counts.get(batch.pk, 0), latest.get(batch.pk)
        if snapshot is None:
            if count:
                due.append(batch.pk)
            continue
        grown = count - snapshot.judgment_count
        if grown >= every_n or (grown > 0 and (now - snapshot.computed_at).total_seconds() >= max_age_seconds):
            due.append(batch.pk)
    return due


@dataclass(frozen=True)
class ItemVotes:
    item: Item
    votes: dict[str, int]


def batch_item_votes(*, batch: Batch) -> list[ItemVotes]:
    """Every item of the batch with its votes, items in id order."""
    items = {item.pk: item for item in Item.objects.filter(batch=batch).order_by("pk")}
    votes = {pk: dict.fromkeys(LABELS, 0) for pk in items}
    for item_id, choice in Judgment.objects.filter(batch=batch).order_by().values_list("item_id", "choice"):
        votes[item_id][choice] += 1
    return [ItemVotes(item=item, votes=votes[pk]) for pk, item in items.items()]


def batch_vote_counts(*, batch: Batch) -> dict[int, dict[str, int]]:
    """Item id -> its votes, for the batch's items with at least one judgment, counted by the database."""
    per_label = {label: Count("id", filter=Q(choice=label)) for label in LABELS}
    rows = Judgment.objects.filter(batch=batch).order_by().values("item_id").annotate(**per_label)
    return {
        row[0]: dict(zip(LABELS, row[1:], strict=True))
        for row in rows.values_list("item_id", *LABELS).iterator(chunk_size=50_000)
    }


def batch_item_labels(*, batch: Batch) -> list[tuple[int, str, str, str, str]]:
    """The batch's items without their texts, in id order: (id, external id, gold, model a, model b)."""
    return list(
        Item.objects.filter(batch=batch)
        .order_by("pk")
        .values_list("pk", "external_id", "gold", "response_a_model", "response_b_model")
        .iterator(chunk_size=50_000)
    )


def snapshot_summary(*, batch: Batch, snapshot: AgreementSnapshot | None) -> dict:
    """A batch's stored numbers as the dashboard, the API and `manage.py agreement` show them: batch figures
    and flags, and per annotator their statistics and flags."""
    summary: dict = {
        "batch_id": batch.pk,
        "batch": batch.name,
        "status": batch.status,
        "criteria_version": batch.criteria_version.number,
        "snapshot_id": None,
        "computed_at": None,
    }
    if snapshot is None:
        return summary
    report = snapshot.report
    flags = report.get("flags", [])
    summary.update(
        snapshot_id=snapshot.pk,
        computed_at=snapshot.computed_at.isoformat(),
        judgments=report["n_judgments"],
        items=report["n_items"],
        annotator_count=report["n_annotators"],
        label_counts=report["label_counts"],
        cohen_kappa=report["cohen_kappa"]["value"],
        fleiss_kappa=report["fleiss_kappa"]["value"],
        krippendorff_alpha=report["krippendorff_alpha"]["value"],
        agreement=report["agreement"]["value"],
        gold_accuracy=report["gold_accuracy"]["value"],
        gold_judgments=report["gold_accuracy"]["n"],
        flags=[f for f in flags if f["subject"] == "batch"],
        judgments_per_hour=report.get("judgments_per_hour", []),
        dimensions=report.get("dimensions", []),
        annotators=[
            {
                "annotator_id": row["annotator"],
                "username": row["username"],
                "judgments": row["n_judgments"],
                "consensus_kappa": row["consensus_kappa"]["value"],
                "consensus_agreement": row["consensus_agreement"]["value"],
                "gold_accuracy": row["gold_accuracy"]["value"],
                "gold_items": row["gold_accuracy"]["n"],
                "left_share": row["left_share"]["value"],
                "left_p_value": row["left_p_value"],
                "longer_share": row["longer_share"]["value"],
                # Among the items where this annotator and the others' consensus picked responses of different
                # length, the share where this annotator picked the longer one: ½ is the consensus's own taste.
                "longer_vs_consensus": (row.get("longer_excess") or {}).get("value"),
                "tie_rate": row["tie_rate"]["value"],
                "both_bad_rate": row["both_bad_rate"]["value"],
                "median_seconds": row["median_seconds"],
                "too_fast": row["too_fast"],
                "flags": [f for f in flags if f["annotator"] == row["annotator"]],
            }
            for row in report["annotators"]
        ],
    )
    return summary


# --- Dataset export: streaming reads and stored snapshots ------------------------------------------------------


class ExportItem(NamedTuple):
    """What an export reads of an item (the Item fields of the same names): enough for a pair, its exclusion
    record and the prompt grouping. A tuple, not a model instance: building a million instances cost more than
    reading the rows."""

    pk: int
    external_id: str
    prompt: str
    messages: list | None
    response_a_text: str
    response_a_model: str
    response_b_text: str
    response_b_model: str
    gold: str


class ExportItemVotes(NamedTuple):
    item: ExportItem
    votes: dict[str, int]


def batch_item_votes_iter(*, batch: Batch, chunk_size: int = 2_000) -> Iterator[ExportItemVotes]:
    """batch_item_votes as a stream: the batch's items in id order with their votes, read `chunk_size` items at a
    time (keyset on the id, votes counted by the database per chunk), so memory stays flat whatever the batch size."""
    last_pk = 0
    while True:
        items = [
            ExportItem._make(row)
            for row in Item.objects.filter(batch=batch, pk__gt=last_pk)
            .order_by("pk")
            .values_list(*ExportItem._fields)[:chunk_size]
        ]
        if not items:
            return
        votes = {item.pk: dict.fromkeys(LABELS, 0) for item in items}
        counted = (
            Judgment.objects.filter(batch=batch, item_id__gte=items[0].pk, item_id__lte=items[-1].pk)
            .order_by()
            .values_list("item_id", "choice")
            .annotate(n=Count("id"))
        )
        for item_id, choice, n in counted:
            votes[item_id][choice] = n
        for item in items:
            yield ExportItemVotes(item=item, votes=votes[item.pk])
        last_pk = items[-1].pk


_EXPORT_COLUMNS = (
    "i.id, i.external_id, i.prompt, i.messages, i.response_a_text, i.response_a_model, i.response_b_text, "
    "i.response_b_model, i.gold, COALESCE(v.a, 0), COALESCE(v.b, 0), COALESCE(v.tie, 0), COALESCE(v.both_bad, 0)"
)
_EXPORT_TYPES = ("int8", "text", "text", "text", "text", "text", "text", "text", "text", "int8", "int8", "int8", "int8")
_VOTE_COUNTS = """
    SELECT item_id,
        SUM(CASE WHEN choice = 'a' THEN 1 ELSE 0 END) AS a,
        SUM(CASE WHEN choice = 'b' THEN 1 ELSE 0 END) AS b,
        SUM(CASE WHEN choice = 'tie' THEN 1 ELSE 0 END) AS tie,
        SUM(CASE WHEN choice = 'both_bad' THEN 1 ELSE 0 END) AS both_bad
    FROM {judgment} WHERE batch_id = {batch} {where} GROUP BY item_id
"""
# PostgreSQL: the whole batch in one COPY, planned as a merge join of the items' primary key scan with the vote
# counts grouped along the judgments' item index (no sort, no hash table): the server streams rows while the
# client writes, on the other core.
_EXPORT_COPY_SQL = f"""
    COPY (
        SELECT {_EXPORT_COLUMNS} FROM {{item}} i LEFT JOIN ({_VOTE_COUNTS}) v ON v.item_id = i.id
        WHERE i.batch_id = {{batch}} ORDER BY i.id
    ) TO STDOUT
"""  # noqa: S608
# Other databases: keyset chunks, each one query (the chunk's items joined with their counts).
_EXPORT_CHUNK_SQL = f"""
    WITH i AS (
        SELECT id, external_id, prompt, messages, response_a_text, response_a_model, response_b_text,
            response_b_model, gold
        FROM {{item}} WHERE batch_id = %s AND id > %s ORDER BY id LIMIT %s
    )
    SELECT {_EXPORT_COLUMNS} FROM i LEFT JOIN ({_VOTE_COUNTS}) v ON v.item_id = i.id ORDER BY i.id
"""  # noqa: S608


def batch_export_rows(*, batch: Batch, chunk_size: int = 2_000) -> Iterator[tuple]:
    """batch_item_votes_iter as plain tuples, for the export's writer: (id, external id, prompt, messages as JSON
    text or None, response A text, A model, response B text, B model, gold, votes a, b, tie, both_bad), items in
    id order, memory flat whatever the batch size. Read through a raw cursor (no model or converter per row): on
    PostgreSQL one streamed COPY of the whole batch, elsewhere one query per `chunk_size` items (keyset on the
    id). The SQL holds table names and the batch's integer id only."""
    names = {"item": Item._meta.db_table, "judgment": Judgment._meta.db_table, "batch": int(batch.pk)}
    if connection.vendor == "postgresql":
        with connection.cursor() as wrapper, wrapper.cursor.copy(_EXPORT_COPY_SQL.format(**names, where="")) as copy:
            copy.set_types(list(_EXPORT_TYPES))
            yield from copy.rows()
        return
    # The chunk's votes by a range scan of the judgments' item index, not one probe per item.
    sql = _EXPORT_CHUNK_SQL.format(**names, where="AND item_id > %s AND item_id <= (SELECT MAX(id) FROM i)")
    last_pk = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql, [batch.pk, last_pk, chunk_size, last_pk])
            rows = cursor.fetchall()
            if not rows:
                return
            yield from rows
            last_pk = rows[-1][0]


def closed_batches(*, project: Project, include_evaluation: bool = False) -> list[Batch]:
    """The project's closed batches, oldest first: what a dataset is made from when no batch is named. Evaluation
    batches (checkpoints judged against each other) only when asked for: they are not training data by default."""
    # Qualification batches (annotation.services.qualification) are never training data; demonstration batches are
    # SFT data, and labelled sources are taken by name (dataset_create's sources), never as "every closed batch".
    batches = Batch.objects.filter(project=project, status=Batch.Status.CLOSED).exclude(
        kind__in=(Batch.Kind.QUALIFICATION, Batch.Kind.DEMONSTRATION, Batch.Kind.LABELLED)
    )
    if not include_evaluation:
        batches = batches.exclude(kind=Batch.Kind.EVALUATION)
    return list(batches.select_related("criteria_version").order_by("created_at", "pk"))


def batches_have_messages(*, batches: Sequence[Batch]) -> bool:
    """Whether any item of the batches has a conversational (messages) prompt."""
    return Item.objects.filter(batch__in=list(batches), messages__isnull=False).exists()


def dataset_list(*, project: Project) -> list[DatasetSnapshot]:
    return list(
        DatasetSnapshot.objects.filter(project=project)
        .select_related("project", "created_by")
        .prefetch_related("batches")
        .order_by("-created_at", "-pk")
    )


def dataset_get(*, snapshot_id: int) -> DatasetSnapshot | None:
    return (
        DatasetSnapshot.objects.select_related("project", "created_by")
        .prefetch_related("batches")
        .filter(pk=snapshot_id)
        .first()
    )


DATASET_FILE_NAMES = {
    "train": "train.jsonl",
    "validation": "validation.jsonl",
    "excluded": "excluded.jsonl",
    "manifest": "manifest.json",
}


def dataset_files(*, snapshot: DatasetSnapshot) -> dict[str, Path]:
    """The snapshot's files by name ("train", "validation", "excluded", "manifest"); not checked (see dataset_verify)."""
    root = Path(settings.ARTIFACTS_DIR) / snapshot.directory
    return {name: root / filename for name, filename in DATASET_FILE_NAMES.items()}


def stored_split_items(*, batch_ids: Iterable[int]) -> list[dict]:
    """The split-vote items of each batch's latest agreement snapshot, oldest batch first, items in id order: the
    same entries as rewards.services.pairs.split_items made when the snapshot was computed (a batch without a
    snapshot has none yet), plus "computed_at", the snapshot's time. Reads stored rows only."""
    latest = AgreementSnapshot.objects.filter(batch_id=OuterRef("pk")).order_by("-computed_at", "-pk").values("pk")[:1]
    snapshot_ids = [
        pk
        for pk in Batch.objects.filter(pk__in=list(batch_ids))
        .annotate(latest=Subquery(latest))
        .values_list("latest", flat=True)
        if pk is not None
    ]
    rows = (
        SplitItem.objects.filter(snapshot_id__in=snapshot_ids)
        .order_by("snapshot__batch__created_at", "snapshot__batch_id", "item_id")
        .values_list(
            "item_id",
            "item__external_id",
            "snapshot__batch__name",
            "reason",
            "votes",
            "agreement",
            "margin",
            "item__response_a_model",
            "item__response_b_model",
            "snapshot__computed_at",
        )
    )
    return [
        {
            "item_pk": pk,
            "item_id": external_id or str(pk),
            "batch": batch,
            "reason": reason,
            "votes": votes,
            "agreement": agreement,
            "margin": margin,
            "model_a": model_a,
            "model_b": model_b,
            "computed_at": computed_at.isoformat(),
        }
        for pk, external_id, batch, reason, votes, agreement, margin, model_a, model_b, computed_at in rows
    ]


# --- Labelled sources and demonstrations, for dataset snapshots (issue 15) -----------------------------------------


def labelled_sources_named(*, project: Project, names: Sequence[str]) -> dict[str, Batch]:
    """The project's batches with these names (any kind: the service says why one is not a labelled source)."""
    return {
        b.name: b
        for b in Batch.objects.filter(project=project, name__in=list(names)).select_related("criteria_version")
    }


def source_files(*, batch: Batch) -> list[dict]:
    """The files imported into a labelled source, oldest first: [{filename, sha256}] of its successful imports."""
    from annotation.models import ImportRecord

    return [
        {"filename": filename, "sha256": sha256}
        for filename, sha256 in ImportRecord.objects.filter(batch=batch, status=ImportRecord.Status.IMPORTED)
        .order_by("created_at", "pk")
        .values_list("filename", "sha256")
    ]


LABELLED_EXPORT_FIELDS = (
    "pk",
    "external_id",
    "prompt",
    "messages",
    "response_a_text",
    "response_a_model",
    "response_b_text",
    "response_b_model",
    "labelled_choice",
    "labelled_votes",
    "withdrawn_at",
)


def labelled_export_rows(*, batch: Batch, chunk_size: int = 2_000) -> Iterator[tuple]:
    """A labelled source's items as tuples of LABELLED_EXPORT_FIELDS (messages and labelled_votes decoded), in id
    order, `chunk_size` at a time (keyset on the id): memory stays flat whatever the source's size. No judgments
    are read: a labelled item's preference is the one its file stated."""
    return _by_id_chunks(Item.objects.filter(batch=batch), LABELLED_EXPORT_FIELDS, chunk_size)


def _by_id_chunks(queryset, fields: Sequence[str], chunk_size: int) -> Iterator[tuple]:
    """The queryset's rows as tuples of `fields` (the id first), in id order, `chunk_size` at a time (keyset on the
    id, so each query is as cheap as the first)."""
    last_pk = 0
    while True:
        rows = list(queryset.filter(pk__gt=last_pk).order_by("pk").values_list(*fields)[:chunk_size])
        if not rows:
            return
        yield from rows
        last_pk = rows[-1][0]


DEMONSTRATION_EXPORT_FIELDS = (
    "pk",
    "item_id",
    "item__external_id",
    "item__prompt",
    "item__messages",
    "item__withdrawn_at",
    "status",
    "text",
    "edited_text",
    "writer__username",
    "reviewed_by__username",
)


def demonstration_export_rows(*, batch: Batch, chunk_size: int = 2_000) -> Iterator[tuple]:
    """A batch's demonstrations (written in a demonstration batch, or imported into a labelled source) with their
    item's prompt, as tuples of DEMONSTRATION_EXPORT_FIELDS, in id order, `chunk_size` at a time."""
    from annotation.models import Demonstration

    return _by_id_chunks(Demonstration.objects.filter(batch=batch), DEMONSTRATION_EXPORT_FIELDS, chunk_size)


def items_without_demonstrations(*, batch: Batch) -> list[tuple[int, str, bool]]:
    """The batch's items nobody wrote a demonstration for: (id, external id, withdrawn), in id order."""
    return [
        (pk, external_id, withdrawn_at is not None)
        for pk, external_id, withdrawn_at in Item.objects.filter(batch=batch, demonstrations__isnull=True)
        .order_by("pk")
        .values_list("pk", "external_id", "withdrawn_at")
    ]
