"""Per-annotator statistics over a batch: agreement with the others' consensus, gold accuracy, position and length bias, speed."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rewards.metrics.data import BOTH_BAD, N_LABELS, NOT_GOLD, TIE, A, B, Judgments
from rewards.metrics.stats import (
    DEFAULT_CONFIDENCE,
    NO_CONSENSUS,
    NOT_RECORDED,
    Coefficient,
    Proportion,
    binom_p_half,
    coefficient_from,
    kappa_from_confusions,
    proportion,
    proportions,
)

NO_CONSENSUS_LABEL = -1


def leave_one_out_consensus(judgments: Judgments) -> np.ndarray:
    """Per judgment, the label the other annotators of its item gave most often, or NO_CONSENSUS_LABEL (-1).

    Strict plurality: a label counts as the consensus only when no other label has as many of the
    others' votes. Items where the others tie at the top, or where no one else judged, give -1 and
    are left out of every consensus statistic (no tie-break, so no label is favoured by its code).
    """
    # Per item and label: the consensus of the others when one judgment with that label is set aside.
    # Computed on the (items, 4) table, then read once per judgment.
    counts = judgments.item_label_counts.astype(np.int32)
    table = np.full((judgments.n_items, N_LABELS), NO_CONSENSUS_LABEL, dtype=np.int64)
    for own in range(N_LABELS):
        others = counts.copy()
        others[:, own] -= 1
        top = others.max(axis=1, initial=0)
        unique_top = (others == top[:, None]).sum(axis=1) == 1
        table[:, own] = np.where((top > 0) & unique_top, others.argmax(axis=1), NO_CONSENSUS_LABEL)
    return table.ravel()[judgments.item * N_LABELS + judgments.label]


def gold_accuracy(judgments: Judgments, *, confidence: float = DEFAULT_CONFIDENCE) -> Proportion:
    """Share of judgments on gold items whose canonical label equals the gold answer.

    A tie on a gold tie counts; both_bad never matches (gold is a, b or tie).
    """
    if judgments.gold is None:
        return Proportion(successes=0.0, n=0, value=None, low=None, high=None, reason=NOT_RECORDED)
    gold = judgments.gold[judgments.item]
    on_gold = gold != NOT_GOLD
    return proportion(int((judgments.label[on_gold] == gold[on_gold]).sum()), int(on_gold.sum()), confidence)


@dataclass(frozen=True)
class AnnotatorStats:
    """One annotator over one batch. Proportions carry Wilson intervals; p-values are two-sided exact
    binomial tests against 1/2, None where there was nothing to test."""

    annotator: int
    n_judgments: int
    consensus_kappa: Coefficient  # kappa of their labels against the leave-one-out consensus (regular items)
    consensus_agreement: Proportion  # share of their labels equal to that consensus (regular items)
    gold_accuracy: Proportion
    tie_rate: Proportion
    both_bad_rate: Proportion
    left_share: Proportion  # among their a/b choices, the share that picked the response shown left
    left_p_value: float | None
    longer_share: Proportion  # among a/b choices on items with a longer response, the share picking it
    longer_p_value: float | None
    longer_excess: Proportion  # paired with a/b consensus: discordant judgments where they picked the longer
    longer_excess_diff: float | None  # their longer share minus the consensus's, on the same judgments
    longer_excess_p_value: float | None  # exact McNemar test on the discordant judgments
    median_seconds: float | None
    too_fast: int


def _per_annotator(annotator: np.ndarray, code: np.ndarray, n_codes: int, n_annotators: int) -> np.ndarray:
    """Counts per annotator and code, shape (n_annotators, n_codes): one pass for several statistics."""
    flat = np.bincount(annotator * n_codes + code, minlength=n_annotators * n_codes)
    return flat.reshape(n_annotators, n_codes)


def _optional_p(values: np.ndarray, index: int) -> float | None:
    value = float(values[index])
    return None if np.isnan(value) else value


def _not_recorded(n_annotators: int) -> tuple[np.ndarray, list[Proportion]]:
    missing = Proportion(successes=0.0, n=0, value=None, low=None, high=None, reason=NOT_RECORDED)
    return np.full(n_annotators, np.nan), [missing] * n_annotators


def _median_seconds(judgments: Judgments, n_per: np.ndarray) -> np.ndarray:
    median = np.full(judgments.n_annotators, np.nan)
    if judgments.seconds is None:
        return median
    # Group by annotator with a stable radix sort (indices fit in 16 bits below 32,768 annotators), then
    # select the middle of each group: a loop over annotators, each step vectorised.
    small = np.int16 if judgments.n_annotators < 2**15 else np.int64
    grouped = judgments.seconds[np.argsort(judgments.annotator.astype(small), kind="stable")]
    ends = np.cumsum(n_per)
    for a in np.flatnonzero(n_per):
        group = grouped[ends[a] - n_per[a] : ends[a]]
        low, high = (n_per[a] - 1) // 2, n_per[a] // 2
        part = np.partition(group, (low, high))
        median[a] = (part[low] + part[high]) / 2.0
    return median


def annotator_stats(
    judgments: Judgments, *, min_seconds: float = 3.0, confidence: float = DEFAULT_CONFIDENCE
) -> list[AnnotatorStats]:
    """Statistics for every annotator with at least one judgment, in annotator order.

    Judgments faster than min_seconds (the project's minimum) count as too fast. Everything that reads the
    consensus of the others (kappa and agreement with it, the length excess) uses regular items only; position,
    length share, tie rate and speed use every judgment (gold items are served blind, sides drawn at random).
    """
    n_ann = judgments.n_annotators
    ann = judgments.annotator
    label = judgments.label
    by_label = _per_annotator(ann, label, N_LABELS, n_ann)
    n_per = by_label.sum(axis=1)
    n_ab = by_label[:, A] + by_label[:, B]

    consensus = leave_one_out_consensus(judgments)
    if judgments.gold is not None:
        # Agreement with the consensus is a figure of regular items only (see Judgments.regular); gold items
        # have their own figure, gold accuracy. Consensus never crosses items, so masking equals subsetting.
        consensus[judgments.gold[judgments.item] != NOT_GOLD] = NO_CONSENSUS_LABEL
    with_consensus = consensus != NO_CONSENSUS_LABEL
    confusion = np.bincount(
        ann[with_consensus] * N_LABELS * N_LABELS + label[with_consensus] * N_LABELS + consensus[with_consensus],
        minlength=n_ann * N_LABELS * N_LABELS,
    ).reshape(n_ann, N_LABELS, N_LABELS)
    kappa, observed, expected, defined = kappa_from_confusions(confusion)
    n_consensus = confusion.sum(axis=(1, 2))
    agreement = proportions(np.trace(confusion, axis1=1, axis2=2), n_consensus, confidence)

    if judgments.gold is None:
        gold = _not_recorded(n_ann)[1]
    else:
        item_gold = judgments.gold[judgments.item]
        # 0 not gold, 1 gold and wrong, 2 gold and right (both_bad never equals a gold answer).
        by_gold = _per_annotator(ann, (item_gold != NOT_GOLD).astype(np.int64) + (label == item_gold), 3, n_ann)
        gold = proportions(by_gold[:, 2], by_gold[:, 1] + by_gold[:, 2], confidence)

    tie = proportions(by_label[:, TIE], n_per, confidence)
    both_bad = proportions(by_label[:, BOTH_BAD], n_per, confidence)

    if judgments.shown_left is None:
        left_p, left = _not_recorded(n_ann)
    else:
        picked_left = (label <= B) & ((label == A) == judgments.shown_left)
        k = np.bincount(ann[picked_left], minlength=n_ann)
        left, left_p = proportions(k, n_ab, confidence), binom_p_half(k, n_ab)

    if judgments.longer is None:
        longer_p, longer = _not_recorded(n_ann)
        excess_p, excess = _not_recorded(n_ann)
        excess_diff = np.full(n_ann, np.nan)
    else:
        item_longer = judgments.longer[judgments.item]
        scored = (label <= B) & (item_longer >= 0)
        # Paired with the consensus on the same judgments, so items where the longer answer is simply
        # better (everyone picks it) do not count as a bias of this annotator. Code: picked the longer
        # (+1), consensus a/b and picked the longer (+2) or the shorter (+4); 6 = not scored.
        consensus_ab = (consensus == A) | (consensus == B)
        code = (
            (label == item_longer).astype(np.int64)
            + 2 * (consensus_ab & (consensus == item_longer))
            + 4 * (consensus_ab & (consensus != item_longer))
        )
        by_length = _per_annotator(ann, np.where(scored, code, 6), 7, n_ann)
        n_scored = by_length[:, :6].sum(axis=1)
        k = by_length[:, 1] + by_length[:, 3] + by_length[:, 5]
        longer, longer_p = proportions(k, n_scored, confidence), binom_p_half(k, n_scored)
        up, down = by_length[:, 5], by_length[:, 2]  # they longer / consensus shorter, and the reverse
        n_paired = by_length[:, 2:6].sum(axis=1)
        excess = proportions(up, up + down, confidence)
        excess_p = binom_p_half(up, up + down)
        with np.errstate(divide="ignore", invalid="ignore"):
            excess_diff = np.where(n_paired > 0, (up - down) / n_paired, np.nan)

    median = _median_seconds(judgments, n_per)
    too_fast = (
        np.bincount(ann[judgments.seconds < min_seconds], minlength=n_ann)
        if judgments.seconds is not None
        else np.zeros(n_ann, np.int64)
    )

    result = []
    for a in np.flatnonzero(n_per):
        consensus_agreement = agreement[a]
        if consensus_agreement.n == 0:
            consensus_agreement = replace(consensus_agreement, reason=NO_CONSENSUS)
        result.append(
            AnnotatorStats(
                annotator=int(a),
                n_judgments=int(n_per[a]),
                consensus_kappa=coefficient_from(
                    kappa[a], observed[a], expected[a], int(n_consensus[a]), bool(defined[a]), NO_CONSENSUS
                ),
                consensus_agreement=consensus_agreement,
                gold_accuracy=gold[a],
                tie_rate=tie[a],
                both_bad_rate=both_bad[a],
                left_share=left[a],
                left_p_value=_optional_p(left_p, a),
                longer_share=longer[a],
                longer_p_value=_optional_p(longer_p, a),
                longer_excess=excess[a],
                longer_excess_diff=_optional_p(excess_diff, a),
                longer_excess_p_value=_optional_p(excess_p, a),
                median_seconds=_optional_p(median, a),
                too_fast=int(too_fast[a]),
            )
        )
    return result
