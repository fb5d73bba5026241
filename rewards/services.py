"""Rewards' writes and computations: agreement snapshots of a batch, and votes turned into preference pairs."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from django.db import transaction
from django.utils import timezone

from annotation.models import Batch
from annotation.rules import vote_decision
from rewards.metrics import (
    N_LABELS,
    Judgments,
    Proportion,
    batch_report,
    dawid_skene,
    flags_for,
    pool_baseline,
)
from rewards.models import AgreementSnapshot
from rewards.selectors import (
    LABELS,
    batch_item_votes,
    batch_judgments,
    earlier_batches,
    flag_rules_for,
    latest_snapshots,
    usernames_for,
)

# Drop alarms leave a batch out of that annotator's baseline, so a fall does not become their new normal.
DROP_ALARMS = {"gold_drop", "consensus_drop"}


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
    data["flags"] = [
        {**flag.to_dict(), "annotator": None if flag.annotator is None else user_ids[flag.annotator]}
        | ({"username": username[flag.annotator]} if flag.annotator is not None else {})
        for flag in flags
    ]
    return AgreementSnapshot.objects.create(
        batch=batch, computed_at=timezone.now(), judgment_count=current.judgments.size, report=data
    )


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
        for row in report["annotators"]:
            a = index.setdefault(row["annotator"], len(index))
            stats.append(_StoredStats(a, Proportion(**row["gold_accuracy"]), Proportion(**row["consensus_agreement"])))
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
    """A fresh snapshot of every batch of the project, oldest batch first (each is the next one's baseline)."""
    snapshots = []
    for batch in Batch.objects.filter(project_id=project_id).order_by("created_at", "pk"):
        snapshots.append(snapshot_compute(batch=batch))
    return snapshots


Weighting = Literal["vote", "dawid_skene"]


def preference_pairs(*, batch_ids: Iterable[int], weighting: Weighting = "vote") -> tuple[list[dict], list[dict]]:
    """The batches' items as preference pairs (TRL format plus votes, agreement, margin), and every item left out.

    Per item, annotation.rules.vote_decision decides with the batch's criteria version's tie rule and the
    project's min_agreement. Left out, each with its reason:
    - "gold": gold items are quality probes served to many annotators, with an answer fixed by the lead rather
      than by votes; training on them would also leak the gold set into the model that is later checked
      against it. (Their judgments still count toward the Dawid-Skene fit.)
    - "incomplete": fewer votes than the project's overlap (an open batch's item still being judged).
    - vote_decision's reasons: "split", "low_agreement" (the dashboard's split items), "tie", "both_bad"
      (material for demonstrations).

    weighting "dawid_skene": each vote counts the voter's estimated accuracy from a Dawid-Skene fit over the
    batch (the mean posterior of the labels they gave) instead of 1, so reliable annotators weigh more.
    """
    if weighting not in ("vote", "dawid_skene"):
        raise ValueError(f"unknown weighting {weighting!r}")
    pairs: list[dict] = []
    excluded: list[dict] = []
    batches = Batch.objects.filter(pk__in=list(batch_ids)).select_related("project", "criteria_version")
    for batch in batches.order_by("created_at", "pk"):
        weighted = _reliability_weighted_votes(batch) if weighting == "dawid_skene" else {}
        for entry in batch_item_votes(batch=batch):
            item, votes = entry.item, entry.votes
            common = {
                "item_id": item.external_id or str(item.pk),
                "item_pk": item.pk,
                "batch": batch.name,
                "criteria_version": batch.criteria_version.number,
                "votes": votes,
            }
            if item.gold:
                excluded.append(_exclusion(common, item, "gold"))
                continue
            if sum(votes.values()) < batch.project.overlap:
                excluded.append(_exclusion(common, item, "incomplete"))
                continue
            counted = weighted.get(item.pk, votes)
            decision = vote_decision(
                **counted, tie_rule=batch.criteria_version.tie_rule, min_agreement=batch.project.min_agreement
            )
            scores = {"agreement": round(decision.agreement, 6), "margin": round(decision.margin, 6)}
            if weighting == "dawid_skene":
                scores["weighted_votes"] = {label: round(value, 6) for label, value in counted.items()}
            if decision.chosen is None:
                excluded.append(_exclusion(common, item, decision.reason) | scores)
                continue
            pairs.append(_pair(item, decision.chosen) | common | scores)
    return pairs, excluded


def _reliability_weighted_votes(batch: Batch) -> dict[int, dict[str, float]]:
    current = batch_judgments(batch=batch)
    judgments = current.judgments
    if not judgments.size:
        return {}
    fit = dawid_skene(judgments)
    weights = fit.annotator_accuracy[judgments.annotator]
    table = np.bincount(
        judgments.item * N_LABELS + judgments.label, weights=weights, minlength=judgments.n_items * N_LABELS
    ).reshape(judgments.n_items, N_LABELS)
    return {
        int(item_id): {label: float(value) for label, value in zip(LABELS, row, strict=True)}
        for item_id, row in zip(current.item_ids.tolist(), table, strict=True)
    }


def _exclusion(common: dict, item, reason: str) -> dict:
    return {**common, "reason": reason, "models": {"a": item.response_a_model, "b": item.response_b_model}}


def _pair(item, chosen: str) -> dict:
    winner, loser = (item.response_a_text, item.response_b_text)[:: 1 if chosen == "a" else -1]
    if item.messages:
        return {
            "prompt": item.messages,
            "chosen": [{"role": "assistant", "content": winner}],
            "rejected": [{"role": "assistant", "content": loser}],
        }
    return {"prompt": item.prompt, "chosen": winner, "rejected": loser}
