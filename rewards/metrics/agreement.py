"""Agreement between annotators over a batch: Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha, percent agreement."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rewards.metrics.data import N_LABELS, Judgments
from rewards.metrics.stats import (
    DEFAULT_CONFIDENCE,
    NO_SHARED_ITEMS,
    SINGLE_LABEL,
    Coefficient,
    Proportion,
    coefficient_from,
    kappa_from_confusions,
    proportion,
)

# Pair keys go through a dense bincount up to this many cells (32 MB of int64), np.unique beyond.
_DENSE_PAIR_CELLS = 1 << 22


@dataclass(frozen=True, eq=False)
class PairwiseKappa:
    """Cohen's kappa for every pair of annotators sharing at least one item, as parallel arrays.

    annotator_a < annotator_b. kappa is NaN exactly where defined is False (chance agreement of 1:
    both used one and the same label on every shared item); rows() gives None and the reason instead.
    Pairs with no shared item are not listed.
    """

    annotator_a: np.ndarray
    annotator_b: np.ndarray
    n_items: np.ndarray
    kappa: np.ndarray
    observed: np.ndarray
    defined: np.ndarray

    def __len__(self) -> int:
        return int(self.annotator_a.size)

    def rows(self) -> list[dict[str, object]]:
        return [
            {
                "annotator_a": int(a),
                "annotator_b": int(b),
                "n_items": int(n),
                "kappa": float(k) if ok else None,
                "observed": float(o),
                "reason": None if ok else SINGLE_LABEL,
            }
            for a, b, n, k, o, ok in zip(
                self.annotator_a, self.annotator_b, self.n_items, self.kappa, self.observed, self.defined, strict=True
            )
        ]


def _within_item_pair_keys(judgments: Judgments, codes: np.ndarray, n_codes: int) -> list[np.ndarray]:
    """For every unordered pair of judgments on one item, min(code) * n_codes + max(code).

    Vectorised over judgments: with the judgments grouped by item, offset d pairs each judgment with the
    one d places later in its group. The set of judgments that still have a partner d places on
    shrinks with d, so the work is the number of pairs whatever the largest item. One array per d.
    """
    order = judgments.item_order
    sorted_items = judgments.item[order]
    sorted_codes = codes[order]
    ends = np.cumsum(judgments.item_counts)
    remaining = ends[sorted_items] - np.arange(judgments.size) - 1  # later judgments of the same item
    key_type = np.int32 if n_codes * n_codes < 2**31 else np.int64
    sorted_codes = sorted_codes.astype(key_type)
    keys = []
    index = np.flatnonzero(remaining >= 1)
    offset = 1
    while index.size:
        first, second = sorted_codes[index], sorted_codes[index + offset]
        keys.append(np.minimum(first, second) * key_type(n_codes) + np.maximum(first, second))
        offset += 1
        index = index[remaining[index] >= offset]
    return keys


def pairwise_cohen_kappa(judgments: Judgments) -> PairwiseKappa:
    """Cohen's kappa (nominal, four labels) for each pair of annotators over the items both judged.

    A judgment's code is annotator * 4 + label, so ordering two codes orders their annotators and the
    key of a pair of codes is at once the annotator pair and the cell of its confusion matrix.
    """
    n_ann = judgments.n_annotators
    if n_ann == 0:
        nothing = np.zeros(0, np.int64)
        return PairwiseKappa(nothing, nothing, nothing, np.zeros(0), np.zeros(0), np.zeros(0, bool))
    n_codes = n_ann * N_LABELS
    codes = judgments.annotator * N_LABELS + judgments.label
    keys = _within_item_pair_keys(judgments, codes, n_codes)
    if n_codes * n_codes <= _DENSE_PAIR_CELLS:
        dense = np.zeros(n_codes * n_codes, dtype=np.int64)
        for part in keys:
            dense += np.bincount(part, minlength=n_codes * n_codes)
        # (code a, code b) -> (annotator a, annotator b, label a, label b); keep a < b.
        table = dense.reshape(n_ann, N_LABELS, n_ann, N_LABELS).transpose(0, 2, 1, 3).reshape(n_ann * n_ann, -1)
        lo, hi = np.divmod(np.arange(n_ann * n_ann), max(n_ann, 1))
        pair_ids = np.flatnonzero((lo < hi) & table.any(axis=1))
        confusions = table[pair_ids]
    else:
        unique, counts = np.unique(np.concatenate(keys) if keys else np.zeros(0, np.int64), return_counts=True)
        code_lo, code_hi = np.divmod(unique.astype(np.int64), n_codes)
        ann_lo, lab_lo = np.divmod(code_lo, N_LABELS)
        ann_hi, lab_hi = np.divmod(code_hi, N_LABELS)
        keep = ann_lo != ann_hi  # the precondition says never; drop rather than pair an annotator with themselves
        pair_ids, slot = np.unique(ann_lo[keep] * n_ann + ann_hi[keep], return_inverse=True)
        cells = N_LABELS * N_LABELS
        flat = np.bincount(
            slot * cells + lab_lo[keep] * N_LABELS + lab_hi[keep], weights=counts[keep], minlength=pair_ids.size * cells
        )
        confusions = flat.astype(np.int64).reshape(pair_ids.size, cells)
    confusions = confusions.reshape(-1, N_LABELS, N_LABELS)
    kappa, observed, _, defined = kappa_from_confusions(confusions)
    annotator_a, annotator_b = np.divmod(pair_ids, max(n_ann, 1))
    return PairwiseKappa(
        annotator_a=annotator_a,
        annotator_b=annotator_b,
        n_items=confusions.sum(axis=(1, 2)),
        kappa=kappa,
        observed=observed,
        defined=defined,
    )


def cohen_kappa_mean(pairs: PairwiseKappa) -> Coefficient:
    """The batch's Cohen's kappa: the mean over pairs weighted by their shared items.

    Pairs whose kappa is undefined (single label) are left out of the mean; observed is the weighted
    mean of the raw agreement over all pairs. None with no_shared_items when no pair exists, with
    single_label when every pair is undefined.
    """
    if len(pairs) == 0:
        return Coefficient(value=None, reason=NO_SHARED_ITEMS, n=0)
    weights = pairs.n_items.astype(np.float64)
    observed = float(np.average(pairs.observed, weights=weights))
    used = pairs.defined
    if not used.any():
        return Coefficient(value=None, reason=SINGLE_LABEL, n=int(weights.sum()), observed=observed)
    value = float(np.average(pairs.kappa[used], weights=weights[used]))
    return Coefficient(value=value, reason=None, n=int(weights[used].sum()), observed=observed)


def cohen_kappa(labels_a: np.ndarray, labels_b: np.ndarray) -> Coefficient:
    """Cohen's kappa between two aligned label arrays (sklearn's cohen_kappa_score, with None for undefined)."""
    labels_a = np.asarray(labels_a, dtype=np.int64)
    labels_b = np.asarray(labels_b, dtype=np.int64)
    confusion = np.bincount(labels_a * N_LABELS + labels_b, minlength=N_LABELS * N_LABELS)
    kappa, observed, expected, defined = kappa_from_confusions(confusion.reshape(1, N_LABELS, N_LABELS))
    return coefficient_from(kappa[0], observed[0], expected[0], int(labels_a.size), bool(defined[0]), NO_SHARED_ITEMS)


@dataclass(frozen=True)
class FleissKappa(Coefficient):
    """Fleiss' kappa; raters is the k used, n the items with at least k judgments."""

    raters: int = 0


def full_overlap_raters(judgments: Judgments) -> int:
    """The usual number of judgments per item: the most common count among items with two or more.

    Ties go to the smaller count, which keeps more items. 0 when no item has two judgments.
    """
    counts = np.bincount(judgments.item_counts)
    if counts.size <= 2:
        return 0
    return int(np.argmax(counts[2:])) + 2


def fleiss_kappa(judgments: Judgments, *, raters: int | None = None) -> FleissKappa:
    """Fleiss' kappa over the items with full overlap.

    k is `raters` (the project's overlap) or else full_overlap_raters(). Every item with at least k
    judgments is used with its first k judgments in array order (callers pass judgments in the order
    they were made). Items with more than k are kept rather than dropped because adaptive overlap
    adds judgments exactly to the split items: dropping them would inflate kappa.
    """
    k = full_overlap_raters(judgments) if raters is None else raters
    if k < 2:
        return FleissKappa(value=None, reason=NO_SHARED_ITEMS, n=0, raters=max(k, 0))
    first = judgments.rank_in_item < k
    table = np.bincount(
        judgments.item[first] * N_LABELS + judgments.label[first], minlength=judgments.n_items * N_LABELS
    ).reshape(judgments.n_items, N_LABELS)
    table = table[table.sum(axis=1) == k]
    n_items = int(table.shape[0])
    if n_items == 0:
        return FleissKappa(value=None, reason=NO_SHARED_ITEMS, n=0, raters=k)
    shares = table.sum(axis=0) / (n_items * k)
    observed = float(((table * table).sum(axis=1) - k).mean() / (k * (k - 1)))
    expected = float((shares * shares).sum())
    if shares.max() == 1.0:
        return FleissKappa(value=None, reason=SINGLE_LABEL, n=n_items, observed=observed, expected=expected, raters=k)
    value = (observed - expected) / (1.0 - expected)
    return FleissKappa(value=value, reason=None, n=n_items, observed=observed, expected=expected, raters=k)


def krippendorff_alpha(judgments: Judgments) -> Coefficient:
    """Krippendorff's alpha, nominal, over every item with two or more judgments (missing ones allowed).

    From the coincidence matrix: alpha = 1 - (n - 1) * D_o / D_e with n the pairable values. observed
    and expected are 1 - D_o and 1 - D_e as shares. None with single_label when every pairable value is
    the same (D_e = 0).
    """
    counts = judgments.item_label_counts
    per_item = judgments.item_counts
    pairable = per_item >= 2
    if not pairable.any():
        return Coefficient(value=None, reason=NO_SHARED_ITEMS, n=0)
    counts = counts[pairable].astype(np.float64)
    m = per_item[pairable].astype(np.float64)
    n = float(m.sum())
    agreeing = float(((counts * (counts - 1.0)).sum(axis=1) / (m - 1.0)).sum())  # sum_c o_cc
    totals = counts.sum(axis=0)  # n_c
    chance_agreeing = float((totals * (totals - 1.0)).sum())
    observed = agreeing / n
    expected = chance_agreeing / (n * (n - 1.0))
    n_units = int(pairable.sum())
    if totals.max() == n:
        return Coefficient(value=None, reason=SINGLE_LABEL, n=n_units, observed=observed, expected=expected)
    value = ((n - 1.0) * agreeing - chance_agreeing) / (n * (n - 1.0) - chance_agreeing)
    return Coefficient(value=value, reason=None, n=n_units, observed=observed, expected=expected)


def percent_agreement(judgments: Judgments, *, confidence: float = DEFAULT_CONFIDENCE) -> Proportion:
    """Raw agreement: per item with two or more judgments, the share of its pairs of judgments that agree,
    averaged over those items (each item counts once, however many judgments it got).

    The Wilson interval takes the items as the sample (n = items, successes = the sum of the shares).
    """
    per_item = judgments.item_counts
    pairable = per_item >= 2
    counts = judgments.item_label_counts[pairable].astype(np.float64)
    m = per_item[pairable].astype(np.float64)
    shares = (counts * (counts - 1.0)).sum(axis=1) / (m * (m - 1.0))
    result = proportion(float(shares.sum()), int(shares.size), confidence)
    if shares.size == 0:
        result = replace(result, reason=NO_SHARED_ITEMS)
    return result
