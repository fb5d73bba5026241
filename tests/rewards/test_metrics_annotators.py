"""Per-annotator statistics, drift and flags: against a plain-Python reading of their definitions."""

import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from rewards.metrics import (
    NO_CONSENSUS_LABEL,
    FlagRules,
    Judgments,
    annotator_drift,
    annotator_stats,
    batch_report,
    flags_for,
    judgments_concat,
    label_distribution_test,
    leave_one_out_consensus,
    longer_side,
)

TOL = 1e-9


@st.composite
def full_batches(draw) -> Judgments:
    n_items = draw(st.integers(1, 30))
    n_annotators = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    present = rng.random((n_items, n_annotators)) < draw(st.sampled_from([0.5, 1.0]))
    item, annotator = np.nonzero(present)
    order = rng.permutation(item.size)
    item, annotator = item[order], annotator[order]
    return Judgments(
        item=item,
        annotator=annotator,
        label=rng.choice(4, size=item.size, p=rng.dirichlet(np.ones(4))),
        n_items=n_items,
        n_annotators=n_annotators,
        seconds=rng.choice([1.0, 2.5, 4.0, 30.0], size=item.size),
        shown_left=rng.random(item.size) < 0.5,
        gold=rng.integers(-1, 3, size=n_items),
        longer=rng.integers(-1, 2, size=n_items),
    )


def consensus_by_hand(j: Judgments, index: int) -> int:
    others = Counter(int(j.label[k]) for k in np.flatnonzero(j.item == j.item[index]) if k != index)
    if not others:
        return NO_CONSENSUS_LABEL
    (top, count), *rest = others.most_common()
    return NO_CONSENSUS_LABEL if rest and rest[0][1] == count else top


@settings(max_examples=120, deadline=None)
@given(full_batches())
def test_annotator_stats_match_their_definitions(j):
    consensus = leave_one_out_consensus(j)
    assert [int(c) for c in consensus] == [consensus_by_hand(j, i) for i in range(j.size)]
    by_annotator = {s.annotator: s for s in annotator_stats(j, min_seconds=3.0)}
    assert set(by_annotator) == set(j.annotator.tolist())
    for a, s in by_annotator.items():
        mine = j.annotator == a
        label = j.label[mine]
        assert s.n_judgments == mine.sum()
        assert s.tie_rate.value == pytest.approx((label == 2).mean(), abs=TOL)
        assert s.both_bad_rate.value == pytest.approx((label == 3).mean(), abs=TOL)
        # Against consensus: sklearn on the judgments of regular (non-gold) items that have one.
        has = (consensus[mine] != NO_CONSENSUS_LABEL) & (j.gold[j.item[mine]] < 0)
        assert s.consensus_kappa.n == has.sum()
        if has.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference = cohen_kappa_score(label[has], consensus[mine][has])
            assert s.consensus_agreement.value == pytest.approx((label[has] == consensus[mine][has]).mean(), abs=TOL)
            if np.isnan(reference):
                assert s.consensus_kappa.value is None
            else:
                assert s.consensus_kappa.value == pytest.approx(reference, abs=TOL)
        # Gold: canonical label equals the gold answer.
        gold = j.gold[j.item[mine]]
        on_gold = gold >= 0
        assert s.gold_accuracy.n == on_gold.sum()
        if on_gold.any():
            assert s.gold_accuracy.value == pytest.approx((label[on_gold] == gold[on_gold]).mean(), abs=TOL)
        # Position: among a/b choices, the response shown left.
        ab = label <= 1
        left = (label == 0) == j.shown_left[mine]
        assert s.left_share.n == ab.sum()
        if ab.any():
            k = int((left & ab).sum())
            assert s.left_share.value == pytest.approx(k / ab.sum(), abs=TOL)
            assert s.left_p_value == pytest.approx(stats.binomtest(k, int(ab.sum())).pvalue, abs=TOL)
        # Length: among a/b choices on items with a longer side.
        longer = j.longer[j.item[mine]]
        scored = ab & (longer >= 0)
        assert s.longer_share.n == scored.sum()
        if scored.any():
            assert s.longer_share.value == pytest.approx((label[scored] == longer[scored]).mean(), abs=TOL)
        cons = np.where(j.gold[j.item[mine]] < 0, consensus[mine], NO_CONSENSUS_LABEL)
        paired = scored & (cons >= 0) & (cons <= 1)
        if paired.any():
            diff = (label[paired] == longer[paired]).mean() - (cons[paired] == longer[paired]).mean()
            assert s.longer_excess_diff == pytest.approx(diff, abs=TOL)
        else:
            assert s.longer_excess_diff is None
        seconds = j.seconds[mine]
        assert s.median_seconds == pytest.approx(float(np.median(seconds)), abs=TOL)
        assert s.too_fast == (seconds < 3.0).sum()


def test_consensus_needs_a_strict_plurality_of_the_others():
    # Item 0: a, a, b -> for the b judgment the others say a; for each a the others split a/b: none.
    # Item 1: a, b, tie, tie -> for the a judgment the others say tie.
    j = Judgments.from_arrays(item=[0, 0, 0, 1, 1, 1, 1], annotator=[0, 1, 2, 0, 1, 2, 3], label=[0, 0, 1, 0, 1, 2, 2])
    assert leave_one_out_consensus(j).tolist() == [-1, -1, 0, 2, 2, -1, -1]


def test_longer_side_ignores_near_equal_lengths():
    assert longer_side([100, 100, 100, 120], [100, 105, 200, 100]).tolist() == [-1, -1, 1, 0]
    assert longer_side([100], [105], min_relative_difference=0.0).tolist() == [1]


def test_concat_keeps_batches_apart_and_annotators_shared():
    one = Judgments.from_arrays(item=[0, 1], annotator=[0, 1], label=[0, 1], gold=[0, -1])
    two = Judgments.from_arrays(item=[0, 0], annotator=[1, 2], label=[2, 2], gold=[-1])
    both = judgments_concat([one, two])
    assert both.item.tolist() == [0, 1, 2, 2] and both.annotator.tolist() == [0, 1, 1, 2]
    assert both.n_items == 3 and both.n_annotators == 3 and both.gold.tolist() == [0, -1, -1]
    assert judgments_concat([]).size == 0


# --- Drift and label shift -------------------------------------------------------------------------


def crowd_of_three(accuracy_of_0: float, items: int, seed: int) -> Judgments:
    """Three annotators on every item; 1 and 2 always right, 0 right with the given accuracy."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, size=items)
    item = np.repeat(np.arange(items), 3)
    annotator = np.tile([0, 1, 2], items)
    label = truth[item].copy()
    wrong = (annotator == 0) & (rng.random(item.size) > accuracy_of_0)
    label[wrong] = 1 - label[wrong]
    return Judgments(
        item=item,
        annotator=annotator,
        label=label,
        n_items=items,
        n_annotators=3,
        gold=np.where(np.arange(items) % 2 == 0, truth, -1),
    )


def test_a_drop_against_the_baseline_is_tested_one_sided_with_fisher():
    baseline, current = crowd_of_three(0.95, 400, 1), crowd_of_three(0.6, 200, 2)
    drift = {d.annotator: d for d in annotator_drift(annotator_stats(baseline), annotator_stats(current))}
    fell = drift[0].consensus_agreement
    assert fell.drop == pytest.approx(fell.baseline.value - fell.current.value)
    reference = stats.fisher_exact(
        [
            [fell.current.successes, fell.current.n - fell.current.successes],
            [fell.baseline.successes, fell.baseline.n - fell.baseline.successes],
        ],
        alternative="less",
    ).pvalue
    assert fell.p_value == pytest.approx(reference, abs=TOL) and fell.p_value < 1e-6
    assert drift[1].consensus_agreement.drop == 0.0


def test_a_new_annotator_has_no_drift():
    baseline = Judgments.from_arrays(item=[0, 0], annotator=[0, 1], label=[0, 0], n_annotators=3)
    current = Judgments.from_arrays(item=[0, 0], annotator=[0, 2], label=[0, 0], n_annotators=3)
    drift = {d.annotator: d for d in annotator_drift(annotator_stats(baseline), annotator_stats(current))}
    assert drift[2].consensus_agreement.p_value is None and drift[2].consensus_agreement.reason == "empty"


def test_label_distribution_test_is_scipy_chi_square_with_cramers_v():
    labels = np.array([0] * 50 + [1] * 50 + [0] * 80 + [1] * 10 + [2] * 10)
    groups = np.array([7] * 100 + [9] * 100)
    shift = label_distribution_test(labels, groups)
    chi2, p, dof, _ = stats.chi2_contingency([[50, 50, 0], [80, 10, 10]], correction=False)
    assert shift.groups == [7, 9] and shift.counts == [[50, 50, 0, 0], [80, 10, 10, 0]]
    assert shift.statistic == pytest.approx(chi2) and shift.p_value == pytest.approx(p) and shift.dof == dof
    assert shift.cramers_v == pytest.approx(np.sqrt(chi2 / 200))


# --- Flags -----------------------------------------------------------------------------------------


def test_flag_rules_from_a_project_override_and_reject_typos():
    rules = FlagRules.from_dict({"batch_kappa_warn": 0.7, "position_band": [0.45, 0.55]})
    assert rules.batch_kappa_warn == 0.7 and rules.position_band == (0.45, 0.55)
    assert FlagRules.from_dict(rules.to_dict()) == rules
    with pytest.raises(ValueError, match="batch_kapa"):
        FlagRules.from_dict({"batch_kapa": 0.7})


def test_low_batch_kappa_warns_then_alarms_and_a_drop_alarms_for_the_annotator():
    baseline, current = crowd_of_three(0.95, 400, 1), crowd_of_three(0.6, 200, 2)
    report = batch_report(current, baseline=baseline)
    flags = flags_for(report, names=["ann", "bob", "cid"])
    codes = {(f.code, f.annotator) for f in flags}
    assert ("consensus_drop", 0) in codes and ("gold_drop", 0) in codes
    assert {f.annotator for f in flags if f.subject == "annotator"} == {0}
    assert all(f.message.startswith("ann:") for f in flags if f.subject == "annotator")
    kappa = report.cohen_kappa.value
    strict = flags_for(report, rules=FlagRules(batch_kappa_warn=kappa + 0.01, batch_kappa_alarm=kappa - 0.01))
    assert [(f.level, f.code) for f in strict if f.subject == "batch"] == [("warn", "batch_kappa")]
    harsh = flags_for(report, rules=FlagRules(batch_kappa_warn=1.0, batch_kappa_alarm=kappa + 0.01))
    (flag,) = [f for f in harsh if f.code == "batch_kappa"]
    assert flag.to_dict() == {
        "level": "alarm",
        "code": "batch_kappa",
        "subject": "batch",
        "annotator": None,
        "message": flag.message,
        "value": kappa,
        "threshold": kappa + 0.01,
    }


def test_many_new_annotators_ask_for_recalibration():
    baseline = Judgments.from_arrays(item=[0, 0], annotator=[0, 1], label=[0, 0], n_annotators=4)
    current = Judgments.from_arrays(item=[0, 0, 0], annotator=[0, 2, 3], label=[0, 0, 0], n_annotators=4)
    report = batch_report(current, baseline=baseline)
    assert report.new_annotators.successes == 2 and report.new_annotators.n == 3
    assert [f.code for f in flags_for(report)] == ["recalibrate"]
    assert flags_for(report, rules=FlagRules(new_annotator_share=0.7)) == []
