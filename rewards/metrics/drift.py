"""Change over time: an annotator against their own baseline, and the label distribution batch against batch or criteria version against version."""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import stats

from rewards.metrics.annotators import AnnotatorStats
from rewards.metrics.data import LABELS, N_LABELS, Judgments
from rewards.metrics.stats import (
    DEFAULT_CONFIDENCE,
    EMPTY,
    NOT_RECORDED,
    SINGLE_GROUP,
    Proportion,
    fisher_less_p,
    proportion,
)


@dataclass(frozen=True)
class ProportionChange:
    """A proportion now against the same annotator's baseline.

    drop is baseline minus current (positive = worse now). p_value is the one-sided Fisher exact test
    that the current proportion is lower; drop and p_value are None (reason "empty") when either side has
    no data, e.g. an annotator new in this batch.
    """

    baseline: Proportion
    current: Proportion
    drop: float | None
    p_value: float | None
    reason: str | None = None


@dataclass(frozen=True)
class AnnotatorDrift:
    annotator: int
    gold_accuracy: ProportionChange
    consensus_agreement: ProportionChange


class HasBaselineFields(Protocol):
    """What drift reads from a baseline: an AnnotatorStats, or an AnnotatorBaseline pooled from snapshots."""

    @property
    def annotator(self) -> int: ...
    @property
    def gold_accuracy(self) -> Proportion: ...
    @property
    def consensus_agreement(self) -> Proportion: ...


@dataclass(frozen=True)
class AnnotatorBaseline:
    """An annotator's pooled proportions over the batches that make their baseline."""

    annotator: int
    gold_accuracy: Proportion
    consensus_agreement: Proportion
    batches: int


_NO_BASELINE = Proportion(successes=0.0, n=0, value=None, low=None, high=None, reason=EMPTY)


def pool_baseline(
    history: Sequence[Sequence[AnnotatorStats]],
    *,
    skip: Container[tuple[int, int]] = (),
    confidence: float = DEFAULT_CONFIDENCE,
) -> list[AnnotatorBaseline]:
    """Each annotator's baseline from their per-batch statistics (stored snapshots): successes and counts add.

    history[b] is batch b's annotator_stats. skip holds (b, annotator) pairs to leave out: the service
    skips the batches in which an annotator raised a drop alarm, so that a drop does not become the new
    normal and stays flagged until a lead acts (and resets the baseline by clearing skip or history).
    Pooling per batch equals computing on the batches concatenated: consensus never crosses a batch.
    """
    totals: dict[int, list[float]] = {}
    for b, batch_stats in enumerate(history):
        for s in batch_stats:
            if (b, s.annotator) in skip:
                continue
            t = totals.setdefault(s.annotator, [0.0, 0, 0.0, 0, 0])
            t[0] += s.gold_accuracy.successes
            t[1] += s.gold_accuracy.n
            t[2] += s.consensus_agreement.successes
            t[3] += s.consensus_agreement.n
            t[4] += 1
    return [
        AnnotatorBaseline(
            annotator=a,
            gold_accuracy=proportion(t[0], int(t[1]), confidence),
            consensus_agreement=proportion(t[2], int(t[3]), confidence),
            batches=int(t[4]),
        )
        for a, t in sorted(totals.items())
    ]


def _changes(baseline: list[Proportion], current: list[Proportion]) -> list[ProportionChange]:
    x_base = np.array([round(p.successes) for p in baseline], dtype=np.int64)
    n_base = np.array([p.n for p in baseline], dtype=np.int64)
    x_now = np.array([round(p.successes) for p in current], dtype=np.int64)
    n_now = np.array([p.n for p in current], dtype=np.int64)
    p_values = fisher_less_p(x_now, n_now, x_base, n_base) if current else np.zeros(0)
    out = []
    for before, now, p in zip(baseline, current, p_values, strict=True):
        if before.value is None or now.value is None:
            out.append(ProportionChange(before, now, None, None, EMPTY))
        else:
            out.append(ProportionChange(before, now, before.value - now.value, float(p)))
    return out


def annotator_drift(baseline: Sequence[HasBaselineFields], current: Sequence[AnnotatorStats]) -> list[AnnotatorDrift]:
    """For every annotator in the current batch: gold accuracy and agreement with the consensus against
    the same annotator's baseline (annotator_stats of their earlier batches as one set, or pool_baseline)."""
    before = {stats_.annotator: stats_ for stats_ in baseline}
    past = [before.get(now.annotator) for now in current]
    gold = _changes([p.gold_accuracy if p else _NO_BASELINE for p in past], [now.gold_accuracy for now in current])
    consensus = _changes(
        [p.consensus_agreement if p else _NO_BASELINE for p in past], [now.consensus_agreement for now in current]
    )
    return [
        AnnotatorDrift(annotator=now.annotator, gold_accuracy=g, consensus_agreement=c)
        for now, g, c in zip(current, gold, consensus, strict=True)
    ]


@dataclass(frozen=True)
class LabelShift:
    """Pearson chi-square test of independence between group (batch, criteria version) and label.

    counts has one row per group in `groups` order and one column per label (a, b, tie, both_bad).
    Labels no group used are dropped before the test. When one label is all there is, the
    distributions are identical: statistic 0, dof 0, p_value 1. With fewer than two groups holding
    judgments, the test is None with reason "single_group" (or "empty").
    cramers_v = sqrt(chi2 / (n * (min(rows, cols) - 1))) is the effect size the flags require, because
    with thousands of judgments a shift too small to matter is still significant.
    """

    groups: list[int]
    counts: list[list[int]]
    n: int
    statistic: float | None
    dof: int | None
    p_value: float | None
    cramers_v: float | None
    reason: str | None = None

    def shares(self) -> list[dict[str, float]]:
        return [
            {label: (count / total if total else 0.0) for label, count in zip(LABELS, row, strict=True)}
            for row in self.counts
            for total in [sum(row)]
        ]


def label_distribution_test(labels: np.ndarray, groups: np.ndarray) -> LabelShift:
    """Do the label shares differ between groups? groups is one integer per judgment."""
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    ids, row = np.unique(groups, return_inverse=True)
    table = np.bincount(row * N_LABELS + labels, minlength=ids.size * N_LABELS).reshape(ids.size, N_LABELS)
    counts = table.tolist()
    n = int(table.sum())
    group_ids = [int(g) for g in ids]
    if ids.size < 2:
        return LabelShift(group_ids, counts, n, None, None, None, None, EMPTY if n == 0 else SINGLE_GROUP)
    used = table[:, table.sum(axis=0) > 0]
    if used.shape[1] < 2:
        return LabelShift(group_ids, counts, n, 0.0, 0, 1.0, 0.0)
    statistic, p_value, dof, _ = stats.chi2_contingency(used, correction=False)
    cramers_v = float(np.sqrt(statistic / (n * (min(used.shape) - 1))))
    return LabelShift(group_ids, counts, n, float(statistic), int(dof), float(p_value), cramers_v)


def label_shift(baseline: Judgments, current: Judgments) -> LabelShift:
    """The current batch's label distribution against the baseline's (group 0 = baseline, 1 = current)."""
    labels = np.concatenate([baseline.label, current.label])
    groups = np.concatenate([np.zeros(baseline.size, np.int64), np.ones(current.size, np.int64)])
    return label_distribution_test(labels, groups)


def criteria_shift(judgments: Judgments) -> LabelShift:
    """The label distribution per criteria version (groups are the versions)."""
    if judgments.criteria is None:
        return LabelShift([], [], judgments.size, None, None, None, None, NOT_RECORDED)
    return label_distribution_test(judgments.label, judgments.criteria[judgments.item])
