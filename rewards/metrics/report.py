"""Every metric of one batch in one call, with the baseline comparisons, as a JSON-ready snapshot."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rewards.metrics.agreement import (
    FleissKappa,
    PairwiseKappa,
    cohen_kappa_mean,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_cohen_kappa,
    percent_agreement,
)
from rewards.metrics.annotators import AnnotatorStats, annotator_stats, gold_accuracy
from rewards.metrics.data import LABELS, N_LABELS, Judgments
from rewards.metrics.drift import (
    AnnotatorDrift,
    HasBaselineFields,
    LabelShift,
    annotator_drift,
    label_distribution_test,
    label_shift,
)
from rewards.metrics.stats import DEFAULT_CONFIDENCE, Coefficient, Proportion, proportion


@dataclass(frozen=True, eq=False)
class BatchReport:
    """One batch's metrics. The baseline fields are empty / None when no baseline was given (a first batch).

    Agreement (the pairs, Cohen, Fleiss, Krippendorff, percent agreement) is over regular items only
    (Judgments.regular): gold items are easy by design and would inflate it; gold_accuracy reports them apart.
    n_items counts every judged item, gold included.
    new_annotators: share of this batch's annotators with no judgment in the baseline.
    label_shift: this batch's labels against the baseline's. criteria_shift: labels per criteria
    version over baseline and batch together, None unless criteria are recorded and two versions occur.
    """

    n_judgments: int
    n_items: int
    n_annotators: int
    label_counts: dict[str, int]
    cohen_pairs: PairwiseKappa
    cohen_kappa: Coefficient
    fleiss_kappa: FleissKappa
    krippendorff_alpha: Coefficient
    agreement: Proportion
    gold_accuracy: Proportion
    annotators: list[AnnotatorStats]
    drift: list[AnnotatorDrift]
    new_annotators: Proportion | None
    label_shift: LabelShift | None
    criteria_shift: LabelShift | None
    min_seconds: float = 3.0  # the project minimum "too fast" was counted against
    # What agreement was computed on. Stored reports without it counted gold items too (before this field), so
    # their agreement with the consensus is no baseline for today's (rewards.services.snapshots reads it).
    agreement_scope: str = "regular_items"

    def to_dict(self, *, include_pairs: bool = True) -> dict[str, object]:
        """Plain dicts, lists, numbers, strings and None: ready for json.dumps and a JSONField."""
        return {
            field.name: (self.cohen_pairs.rows() if include_pairs else None)
            if field.name == "cohen_pairs"
            else to_jsonable(getattr(self, field.name))
            for field in dataclasses.fields(self)
        }


def to_jsonable(value: object) -> object:
    """Dataclasses, NumPy scalars and arrays to plain JSON values; a NaN can only come out as None."""
    if isinstance(value, PairwiseKappa):
        return value.rows()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def batch_report(
    current: Judgments,
    *,
    baseline: Judgments | None = None,
    baseline_stats: Sequence[HasBaselineFields] | None = None,
    raters: int | None = None,
    min_seconds: float = 3.0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> BatchReport:
    """Compute every batch metric of `current`, and its drift against `baseline` (the earlier batches
    of the project as one Judgments, see judgments_concat, in the same annotator index space).

    baseline_stats sets each annotator's drift baseline instead of annotator_stats(baseline): the
    service passes pool_baseline(stored per-batch stats, skip=batches already alarmed), which is both
    cheaper and keeps a flagged drop from becoming the new normal.
    raters is the project's overlap for Fleiss' kappa (default: the most common count per item).
    """
    regular = current.regular()
    pairs = pairwise_cohen_kappa(regular)
    stats_now = annotator_stats(current, min_seconds=min_seconds, confidence=confidence)
    counts = np.bincount(current.label, minlength=N_LABELS)
    drift: list[AnnotatorDrift] = []
    new_annotators = shift = criteria = None
    has_baseline = baseline is not None and baseline.size > 0
    if baseline_stats is None and has_baseline:
        baseline_stats = annotator_stats(baseline, min_seconds=min_seconds, confidence=confidence)
    if baseline_stats:
        drift = annotator_drift(baseline_stats, stats_now)
        if has_baseline:
            seen = set(np.flatnonzero(np.bincount(baseline.annotator)).tolist())
        else:
            seen = {b.annotator for b in baseline_stats}
        active = [s.annotator for s in stats_now]
        new_annotators = proportion(sum(1 for a in active if a not in seen), len(active), confidence)
    if has_baseline:
        shift = label_shift(baseline, current)
    if current.criteria is not None:
        parts = [current] if baseline is None or baseline.criteria is None else [baseline, current]
        versions = np.concatenate([part.criteria[part.item] for part in parts])
        if np.unique(versions).size >= 2:
            criteria = label_distribution_test(np.concatenate([part.label for part in parts]), versions)
    return BatchReport(
        n_judgments=current.size,
        n_items=int((current.item_counts > 0).sum()),
        n_annotators=len(stats_now),
        label_counts={label: int(count) for label, count in zip(LABELS, counts, strict=True)},
        cohen_pairs=pairs,
        cohen_kappa=cohen_kappa_mean(pairs),
        fleiss_kappa=fleiss_kappa(regular, raters=raters),
        krippendorff_alpha=krippendorff_alpha(regular),
        agreement=percent_agreement(regular, confidence=confidence),
        gold_accuracy=gold_accuracy(current, confidence=confidence),
        annotators=stats_now,
        drift=drift,
        new_annotators=new_annotators,
        label_shift=shift,
        criteria_shift=criteria,
        min_seconds=float(min_seconds),
    )
