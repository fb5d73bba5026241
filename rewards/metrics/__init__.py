"""Agreement, gold accuracy, bias and drift as pure functions of NumPy arrays (no Django import).

Data: a `Judgments` holds one batch (or several, see `judgments_concat`) as parallel arrays, one
entry per judgment, plus per-item arrays indexed by item position. Selectors map database ids to
dense positions 0..n-1 and keep the id lists to map results back.

    item        int, 0..n_items-1          which item
    annotator   int, 0..n_annotators-1     who judged (the same index space across batches)
    label       int, 0=a 1=b 2=tie 3=both_bad   canonical, never left/right
    seconds     float, optional            lease to submit
    shown_left  bool, optional             True when response A was shown on the left
    gold        per item, optional         -1 not gold, else the gold answer 0=a 1=b 2=tie (agreement and
                                           the consensus use the other, regular items: Judgments.regular)
    longer      per item, optional         0 A is longer, 1 B is longer, -1 neither (see longer_side)
    criteria    per item, optional         the criteria version the item was judged under

Array order matters in one place: Fleiss' kappa uses the first k judgments of an item, so pass
judgments in the order they were made.

Degenerate inputs never raise and never give a silent NaN (malformed input, e.g. a label code 7,
raises ValueError: that is a bug, not a batch). One convention throughout:

- A statistic that is undefined is None, and its result object says why in `reason`:
  "no_shared_items" (agreement needs an item judged twice; said of empty input too), "empty" (a
  proportion or test with nothing in scope: no gold item, no a/b choice), "single_label" (chance
  agreement is 1 because everyone used one label: kappa and alpha are 0/0 then, so they are None
  even though observed agreement is 1, which the result still reports in `observed`),
  "no_consensus", "single_group", "not_recorded" (the optional array was not given).
- One annotator: no pairs, Fleiss and alpha None (no_shared_items); their own statistics are there,
  with consensus ones None (no_consensus).
- Proportions with n = 0 are None with reason "empty"; p-values with nothing to test are None.
- Array-valued results (all pairwise kappas, Dawid-Skene) use NaN only together with an explicit
  mask (`defined`, `n_judgments > 0`); `.rows()` / `to_jsonable` turn them into None.
- Means skip undefined members (a pair with kappa None does not pull the batch mean).
"""

from rewards.metrics.agreement import (
    FleissKappa,
    PairwiseKappa,
    cohen_kappa,
    cohen_kappa_mean,
    fleiss_kappa,
    full_overlap_raters,
    krippendorff_alpha,
    pairwise_cohen_kappa,
    percent_agreement,
)
from rewards.metrics.annotators import (
    NO_CONSENSUS_LABEL,
    AnnotatorStats,
    annotator_stats,
    gold_accuracy,
    leave_one_out_consensus,
)
from rewards.metrics.data import (
    BOTH_BAD,
    LABELS,
    N_LABELS,
    NO_LONGER,
    NOT_GOLD,
    TIE,
    A,
    B,
    Judgments,
    judgments_concat,
    longer_side,
)
from rewards.metrics.dawid_skene import DawidSkene, dawid_skene
from rewards.metrics.drift import (
    AnnotatorBaseline,
    AnnotatorDrift,
    LabelShift,
    ProportionChange,
    annotator_drift,
    criteria_shift,
    label_distribution_test,
    label_shift,
    pool_baseline,
)
from rewards.metrics.flags import FLAG_MEANINGS, LEVEL_MEANINGS, Flag, FlagRules, flags_for
from rewards.metrics.report import BatchReport, batch_report, to_jsonable
from rewards.metrics.stats import (
    EMPTY,
    NO_CONSENSUS,
    NO_SHARED_ITEMS,
    NOT_RECORDED,
    SINGLE_GROUP,
    SINGLE_LABEL,
    Coefficient,
    Proportion,
    binom_p_half,
    fisher_less_p,
    holm,
    proportion,
    wilson_arrays,
)

__all__ = [
    "BOTH_BAD",
    "EMPTY",
    "FLAG_MEANINGS",
    "LABELS",
    "LEVEL_MEANINGS",
    "NOT_GOLD",
    "NOT_RECORDED",
    "NO_CONSENSUS",
    "NO_CONSENSUS_LABEL",
    "NO_LONGER",
    "NO_SHARED_ITEMS",
    "N_LABELS",
    "SINGLE_GROUP",
    "SINGLE_LABEL",
    "TIE",
    "A",
    "AnnotatorBaseline",
    "AnnotatorDrift",
    "AnnotatorStats",
    "B",
    "BatchReport",
    "Coefficient",
    "DawidSkene",
    "Flag",
    "FlagRules",
    "FleissKappa",
    "Judgments",
    "LabelShift",
    "PairwiseKappa",
    "Proportion",
    "ProportionChange",
    "annotator_drift",
    "annotator_stats",
    "batch_report",
    "binom_p_half",
    "cohen_kappa",
    "cohen_kappa_mean",
    "criteria_shift",
    "dawid_skene",
    "fisher_less_p",
    "flags_for",
    "fleiss_kappa",
    "full_overlap_raters",
    "gold_accuracy",
    "holm",
    "judgments_concat",
    "krippendorff_alpha",
    "label_distribution_test",
    "label_shift",
    "leave_one_out_consensus",
    "longer_side",
    "pairwise_cohen_kappa",
    "percent_agreement",
    "pool_baseline",
    "proportion",
    "to_jsonable",
    "wilson_arrays",
]
