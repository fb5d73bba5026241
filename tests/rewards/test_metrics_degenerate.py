"""Degenerate batches give documented answers: None with a reason, never an exception, never a NaN."""

import json

import numpy as np
import pytest

from rewards.metrics import (
    EMPTY,
    NO_CONSENSUS,
    NO_SHARED_ITEMS,
    NOT_RECORDED,
    SINGLE_GROUP,
    SINGLE_LABEL,
    Judgments,
    annotator_stats,
    batch_report,
    cohen_kappa_mean,
    dawid_skene,
    flags_for,
    fleiss_kappa,
    gold_accuracy,
    krippendorff_alpha,
    label_distribution_test,
    pairwise_cohen_kappa,
    percent_agreement,
)


def batch(item, annotator, label, *, n_items=None, n_annotators=None, full=True) -> Judgments:
    item = np.asarray(item, dtype=np.int64)
    n_items = n_items if n_items is not None else (int(item.max()) + 1 if item.size else 0)
    extra = {}
    if full:
        extra = {
            "seconds": np.full(item.size, 12.0),
            "shown_left": np.arange(item.size) % 2 == 0,
            "gold": np.where(np.arange(n_items) % 2 == 0, 0, -1),
            "longer": np.zeros(n_items, np.int64),
            "criteria": np.ones(n_items, np.int64),
        }
    return Judgments.from_arrays(
        item=item, annotator=annotator, label=label, n_items=n_items, n_annotators=n_annotators, **extra
    )


EMPTY_BATCH = batch([], [], [], n_items=0, n_annotators=0)
EMPTY_WITH_ITEMS = batch([], [], [], n_items=5, n_annotators=3)
ONE_ANNOTATOR = batch([0, 1, 2, 3], [0, 0, 0, 0], [0, 1, 2, 3])
NO_SHARED = batch([0, 1, 2, 3], [0, 0, 1, 1], [0, 1, 0, 1])
ONE_JUDGMENT = batch([0], [0], [1])
SAME_LABEL = batch([0, 0, 0, 1, 1, 1, 2, 2], [0, 1, 2, 0, 1, 2, 0, 1], [1] * 8)
NO_OPTIONAL_ARRAYS = batch([0, 0, 1, 1], [0, 1, 0, 1], [0, 1, 0, 0], full=False)

DEGENERATE = {
    "empty": EMPTY_BATCH,
    "empty with items": EMPTY_WITH_ITEMS,
    "one annotator": ONE_ANNOTATOR,
    "no shared items": NO_SHARED,
    "one judgment": ONE_JUDGMENT,
    "every label the same": SAME_LABEL,
    "no optional arrays": NO_OPTIONAL_ARRAYS,
}


def assert_no_nan(value, path="report"):
    """Walk a to_dict() result: every number finite, every undefined value None."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert_no_nan(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_no_nan(item, f"{path}[{index}]")
    elif isinstance(value, float):
        assert np.isfinite(value), path


@pytest.mark.parametrize("name", DEGENERATE)
def test_the_whole_report_is_defined_json_without_nan(name):
    j = DEGENERATE[name]
    report = batch_report(j, baseline=j)
    as_dict = report.to_dict()
    json.dumps(as_dict, allow_nan=False)
    assert_no_nan(as_dict)
    flags_for(report)  # must not raise
    model = dawid_skene(j)
    assert model.converged
    assert np.all(np.isfinite(model.posterior)) and np.all(np.isfinite(model.confusion))
    assert np.array_equal(np.isnan(model.annotator_accuracy), model.n_judgments == 0)


@pytest.mark.parametrize("j", [EMPTY_BATCH, EMPTY_WITH_ITEMS, ONE_ANNOTATOR, NO_SHARED, ONE_JUDGMENT])
def test_without_an_item_judged_twice_agreement_is_none_because_no_shared_items(j):
    assert len(pairwise_cohen_kappa(j)) == 0
    for result in (cohen_kappa_mean(pairwise_cohen_kappa(j)), fleiss_kappa(j), krippendorff_alpha(j)):
        assert result.value is None and result.reason == NO_SHARED_ITEMS
    agreement = percent_agreement(j)
    assert agreement.value is None and agreement.low is None and agreement.reason == NO_SHARED_ITEMS


def test_every_label_the_same_is_single_label_with_observed_agreement_one():
    j = SAME_LABEL
    pairs = pairwise_cohen_kappa(j)
    assert len(pairs) == 3 and not pairs.defined.any()
    assert all(row["kappa"] is None and row["reason"] == SINGLE_LABEL for row in pairs.rows())
    for result in (cohen_kappa_mean(pairs), fleiss_kappa(j), krippendorff_alpha(j)):
        assert result.value is None and result.reason == SINGLE_LABEL and result.observed == 1.0
    assert percent_agreement(j).value == 1.0
    for stats in annotator_stats(j):
        assert stats.consensus_kappa.value is None and stats.consensus_kappa.reason == SINGLE_LABEL
        assert stats.consensus_agreement.value == 1.0


def test_an_undefined_pair_does_not_pull_the_batch_mean():
    # Pair (0, 1) agrees on "b" only (undefined); pair (0, 2) and (1, 2) are defined.
    j = batch([0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 0, 1, 0, 2, 1, 2], [1, 1, 1, 1, 0, 1, 1, 0])
    pairs = pairwise_cohen_kappa(j)
    rows = {(r["annotator_a"], r["annotator_b"]): r for r in pairs.rows()}
    assert rows[(0, 1)]["reason"] == SINGLE_LABEL
    mean = cohen_kappa_mean(pairs)
    assert mean.value is not None and mean.n == rows[(0, 2)]["n_items"] + rows[(1, 2)]["n_items"]


def test_one_annotator_has_their_own_statistics_and_no_consensus():
    (stats,) = annotator_stats(ONE_ANNOTATOR)
    assert stats.n_judgments == 4
    assert stats.consensus_kappa.value is None and stats.consensus_kappa.reason == NO_CONSENSUS
    assert stats.consensus_agreement.value is None and stats.consensus_agreement.reason == NO_CONSENSUS
    assert stats.tie_rate.value == 0.25 and stats.both_bad_rate.value == 0.25
    assert stats.gold_accuracy.n == 2 and stats.gold_accuracy.value == 0.5  # items 0 and 2 are gold "a"
    assert stats.longer_excess_diff is None and stats.longer_excess_p_value is None


def test_missing_optional_arrays_are_not_recorded_not_zero():
    stats = annotator_stats(NO_OPTIONAL_ARRAYS)[0]
    for proportion in (stats.gold_accuracy, stats.left_share, stats.longer_share, stats.longer_excess):
        assert proportion.value is None and proportion.reason == NOT_RECORDED
    assert stats.left_p_value is None and stats.longer_p_value is None and stats.median_seconds is None
    assert stats.too_fast == 0
    assert gold_accuracy(NO_OPTIONAL_ARRAYS).reason == NOT_RECORDED


def test_no_gold_item_and_no_ab_choice_are_empty():
    j = Judgments.from_arrays(
        item=[0, 1], annotator=[0, 0], label=[2, 3], gold=[-1, -1], shown_left=np.array([True, False])
    )
    (stats,) = annotator_stats(j)
    assert stats.gold_accuracy.reason == EMPTY and stats.gold_accuracy.value is None
    assert stats.left_share.reason == EMPTY and stats.left_p_value is None
    assert gold_accuracy(j).reason == EMPTY


def test_label_test_with_one_group_or_one_label():
    one_group = label_distribution_test(np.array([0, 1, 1]), np.array([3, 3, 3]))
    assert one_group.p_value is None and one_group.reason == SINGLE_GROUP
    nothing = label_distribution_test(np.array([], np.int64), np.array([], np.int64))
    assert nothing.p_value is None and nothing.reason == EMPTY
    one_label = label_distribution_test(np.array([2, 2, 2, 2]), np.array([0, 0, 1, 1]))
    assert (one_label.statistic, one_label.dof, one_label.p_value, one_label.cramers_v) == (0.0, 0, 1.0, 0.0)


def test_first_batch_has_no_drift_and_no_recalibration_check():
    report = batch_report(SAME_LABEL)
    assert report.drift == [] and report.new_annotators is None and report.label_shift is None
    assert [f.code for f in flags_for(report)] == []
