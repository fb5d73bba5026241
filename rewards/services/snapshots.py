"""Agreement snapshots: a batch's metrics and flags computed from its judgments and stored for pages to read."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import Batch
from annotation.selectors import judged_batches
from rewards.metrics import (
    N_LABELS,
    Judgments,
    Proportion,
    batch_report,
    flags_for,
    pool_baseline,
)
from rewards.metrics.agreement import krippendorff_alpha, percent_agreement
from rewards.metrics.report import to_jsonable
from rewards.models import AgreementSnapshot, SplitItem
from rewards.selectors import (
    LABELS,
    batch_dimension_votes,
    batch_judgments,
    batches_due_for_snapshot,
    earlier_batches,
    flag_rules_for,
    latest_snapshots,
    usernames_for,
)
from rewards.services.pairs import split_items

# Drop alarms leave a batch out of that annotator's baseline, so a fall does not become their new normal.
DROP_ALARMS = {"gold_drop", "consensus_drop"}
REGULAR_ITEMS = "regular_items"  # BatchReport.agreement_scope of reports whose agreement leaves gold items out
_NO_BASELINE = Proportion(successes=0.0, n=0, value=None, low=None, high=None, reason="empty")


@dataclass(frozen=True)
class _StoredStats:
    """What pool_baseline reads of an annotator's stats, rebuilt from a stored snapshot."""

    annotator: int
    gold_accuracy: Proportion
    consensus_agreement: Proportion


def snapshot_compute(*, batch: Batch) -> AgreementSnapshot:
    """Compute and store the batch's metrics and flags now.

    The baseline is the project's earlier batches, read from their latest stored snapshots (an earlier batch
    without one gets one first): each annotator's pooled gold accuracy and consensus agreement (pool_baseline,
    leaving out batches where they raised a drop alarm), and the earlier label counts and annotators for label
    shift, criteria shift and the share of new annotators. Old judgments are never re-read.
    """
    batch = Batch.objects.select_related("project", "criteria_version").get(pk=batch.pk)
    earlier = earlier_batches(batch=batch)
    stored = latest_snapshots(batches=earlier)
    for previous_position, previous in enumerate(earlier):
        if previous.pk not in stored:
            stored[previous.pk] = _snapshot_store(batch=previous, history=_history(earlier[:previous_position], stored))
    return _snapshot_store(batch=batch, history=_history(earlier, stored))


def _history(batches: Sequence[Batch], stored: dict[int, AgreementSnapshot]) -> list[tuple[Batch, dict]]:
    return [(b, stored[b.pk].report) for b in batches if b.pk in stored]


@transaction.atomic
def _snapshot_store(*, batch: Batch, history: list[tuple[Batch, dict]]) -> AgreementSnapshot:
    project = batch.project
    index: dict[int, int] = {}
    current = batch_judgments(batch=batch, annotator_index=index)
    baseline, baseline_stats = _baseline(history, index)
    report = batch_report(
        current.judgments,
        baseline=baseline,
        baseline_stats=baseline_stats or None,
        raters=project.overlap,
        min_seconds=float(project.min_seconds_per_judgment),
    )
    user_ids = sorted(index, key=index.__getitem__)
    names = usernames_for(user_ids=user_ids)
    username = [names.get(user_id, str(user_id)) for user_id in user_ids]
    flags = flags_for(report, rules=flag_rules_for(project=project), names=username)
    data = report.to_dict()
    for key in ("annotators", "drift"):
        for row in data[key]:
            row["username"] = username[row["annotator"]]
            row["annotator"] = user_ids[row["annotator"]]
    for row in data["cohen_pairs"]:
        row["annotator_a"], row["annotator_b"] = user_ids[row["annotator_a"]], user_ids[row["annotator_b"]]
    data["judgments_per_hour"] = judgments_per_hour(current.hours)
    data["dimensions"] = dimension_agreement(batch=batch)
    advice = _recalibrate_advice(project)
    data["flags"] = [
        {**flag.to_dict(), "annotator": None if flag.annotator is None else user_ids[flag.annotator]}
        | ({"message": f"{flag.message}; {advice}"} if flag.code == "recalibrate" else {})
        | ({"username": username[flag.annotator]} if flag.annotator is not None else {})
        for flag in flags
    ]
    snapshot = AgreementSnapshot.objects.create(
        batch=batch, computed_at=timezone.now(), judgment_count=current.judgments.size, report=data
    )
    _store_split_items(snapshot=snapshot)
    _prune(batch=batch, keep=settings.TANDEM_SNAPSHOTS_KEPT_PER_BATCH)
    return snapshot


def _recalibrate_advice(project) -> str:
    """Where the recalibrate flag points a lead: the project's qualification gate (annotation's qualification step)."""
    if project.qualification_required:
        return (
            f"new annotators pass the qualification set first ({project.qualification_size} gold items, "
            f"{project.qualification_threshold:.0%} needed): their results are on their pages"
        )
    return "the project can require a qualification set of gold items before live work (qualification_required)"


def dimension_agreement(*, batch: Batch) -> list[dict]:
    """Agreement on each criteria dimension of the batch's version (priority order), on regular items: Krippendorff's
    alpha (nominal, a / b / tie) and percent agreement, over the items where two or more annotators answered it."""
    votes = batch_dimension_votes(batch=batch)
    rows = []
    for dimension in sorted(batch.criteria_version.dimensions or [], key=lambda d: d.get("priority", 0)):
        key = dimension.get("key")
        judgments = votes.get(key)
        alpha = krippendorff_alpha(judgments) if judgments is not None else None
        percent = percent_agreement(judgments) if judgments is not None else None
        rows.append(
            {
                "key": key,
                "label": dimension.get("label") or key,
                "judgments": judgments.size if judgments is not None else 0,
                "alpha": to_jsonable(alpha),
                "percent_agreement": to_jsonable(percent),
            }
        )
    return rows


def _store_split_items(*, snapshot: AgreementSnapshot) -> None:
    """The batch's split-vote items as of this snapshot (rewards.services.pairs.split_items: the decisions
    preference_pairs makes), stored beside it for the lead's list."""
    SplitItem.objects.bulk_create(
        (
            SplitItem(
                snapshot=snapshot,
                item_id=row["item_pk"],
                reason=row["reason"],
                votes=row["votes"],
                agreement=row["agreement"],
                margin=row["margin"],
            )
            for row in split_items(batch_ids=[snapshot.batch_id])
        ),
        batch_size=5_000,
    )


def _prune(*, batch: Batch, keep: int) -> None:
    """Keep the batch's newest `keep` snapshots. Pages read the latest only, and an open batch refreshed every N
    judgments would otherwise pile up a report (about 2 MB at 200 annotators) per N judgments."""
    older = AgreementSnapshot.objects.filter(batch=batch).order_by("-computed_at", "-pk").values_list("pk", flat=True)
    stale = list(older[max(1, keep) :])
    if stale:
        AgreementSnapshot.objects.filter(pk__in=stale).delete()


def judgments_per_hour(hours: np.ndarray) -> list[dict]:
    """Judgments per UTC hour from the first hour to the last, hours without any listed with 0 (a chart has no
    gaps to misread): [{"hour": ISO-8601 start of the hour, "judgments": n}]."""
    if not hours.size:
        return []
    first = int(hours.min())
    counts = np.bincount(hours - first)
    return [
        {"hour": datetime.fromtimestamp((first + offset) * 3600, tz=UTC).isoformat(), "judgments": int(n)}
        for offset, n in enumerate(counts.tolist())
    ]


def _baseline(history: list[tuple[Batch, dict]], index: dict[int, int]) -> tuple[Judgments | None, list]:
    """The earlier batches as rewards.metrics expects them, from their stored reports.

    batch_report reads three things of a baseline Judgments when baseline_stats is given: its labels (label
    shift), the criteria version of each judgment (criteria shift) and which annotators judged (new
    annotators). Stored label counts and annotator lists give exactly those; tests check the report equals
    the one computed from the earlier judgments themselves.
    """
    per_batch_stats, skip = [], set()
    labels, items, annotators, criteria = [], [], [], []
    for position, (batch, report) in enumerate(history):
        stats = []
        # A report stored before agreement left gold items out counted easy gold items in the consensus
        # agreement: compared with today's figure it would read as a drop. Such batches give no consensus baseline.
        same_scope = report.get("agreement_scope") == REGULAR_ITEMS
        for row in report["annotators"]:
            a = index.setdefault(row["annotator"], len(index))
            consensus = Proportion(**row["consensus_agreement"]) if same_scope else _NO_BASELINE
            stats.append(_StoredStats(a, Proportion(**row["gold_accuracy"]), consensus))
        per_batch_stats.append(stats)
        skip |= {(position, index[f["annotator"]]) for f in report["flags"] if f["code"] in DROP_ALARMS}
        codes = np.repeat(np.arange(N_LABELS), [report["label_counts"][label] for label in LABELS])
        criteria.append(batch.criteria_version.number)
        if codes.size:
            labels.append(codes)
            items.append(np.full(codes.size, position))
            annotators.append(np.resize(np.array([s.annotator for s in stats], dtype=np.int64), codes.size))
    if not labels:
        return None, []
    baseline = Judgments(
        item=np.concatenate(items),
        annotator=np.concatenate(annotators),
        label=np.concatenate(labels),
        n_items=len(history),
        n_annotators=len(index),
        criteria=np.array(criteria, dtype=np.int64),
    )
    return baseline, pool_baseline(per_batch_stats, skip=skip)


def snapshot_all_for_project(*, project_id: int) -> list[AgreementSnapshot]:
    """A fresh snapshot of every judged batch of the project, oldest batch first (each is the next one's baseline);
    labelled sources have no judgments to snapshot."""
    snapshots = []
    for batch in judged_batches(project=project_id).order_by("created_at", "pk"):
        snapshots.append(snapshot_compute(batch=batch))
    return snapshots


def snapshots_refresh_due(*, every_n: int, max_age_seconds: float) -> list[int]:
    """A fresh snapshot of each open batch that is due (see batches_due_for_snapshot); the ids refreshed.

    Each batch is refreshed under its row lock, taken with SKIP LOCKED and re-checked once held: when two refreshes
    run at once (the timer and the every-N trigger), one computes and the other moves on instead of repeating it.
    """
    refreshed = []
    for batch_id in batches_due_for_snapshot(every_n=every_n, max_age_seconds=max_age_seconds, now=timezone.now()):
        with transaction.atomic():
            batch = Batch.objects.select_for_update(skip_locked=True).filter(pk=batch_id).first()
            still_due = batch is not None and batches_due_for_snapshot(
                every_n=every_n, max_age_seconds=max_age_seconds, now=timezone.now(), batch_ids=[batch_id]
            )
            if still_due:
                snapshot_compute(batch=batch)
                refreshed.append(batch_id)
    return refreshed
