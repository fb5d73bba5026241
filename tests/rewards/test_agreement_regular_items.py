"""Batch agreement and agreement with the consensus are figures of regular items: gold items (easy by design,
served to many) are left out of them and reported apart as gold accuracy. Checked against scikit-learn,
statsmodels and `krippendorff` on the regular items alone, and by adding gold items to a batch."""

import itertools
import warnings

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from rewards.metrics import Judgments, batch_report, flags_for
from tests.rewards.flag_crowd import crowd_batch

TOL = 1e-9


def regular_matrix(j: Judgments) -> np.ndarray:
    """annotators x regular items, NaN where missing (the krippendorff package's layout)."""
    matrix = np.full((j.n_annotators, j.n_items), np.nan)
    matrix[j.annotator, j.item] = j.label
    return matrix[:, j.gold < 0]


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


@pytest.mark.parametrize("seed", range(4))
def test_batch_agreement_is_computed_on_regular_items_only(seed):
    j = crowd_batch(seed, problem="random", n_annotators=6, per_annotator=60)
    assert (j.gold[j.item] >= 0).sum() > 0  # the batch has judged gold items
    report = batch_report(j, raters=3)
    matrix = regular_matrix(j)

    # Cohen's kappa per pair (scikit-learn), weighted by shared regular items.
    kappas, weights = [], []
    for a, b in itertools.combinations(range(j.n_annotators), 2):
        both = ~np.isnan(matrix[a]) & ~np.isnan(matrix[b])
        if both.any():
            kappas.append(quiet(cohen_kappa_score, matrix[a, both], matrix[b, both]))
            weights.append(both.sum())
    assert report.cohen_kappa.value == pytest.approx(np.average(kappas, weights=weights), abs=TOL)
    assert report.cohen_kappa.n == sum(weights)

    # Fleiss' kappa (statsmodels) on the regular items with three judgments, first three in the order made.
    rows = [j.label[j.item == i][:3] for i in np.flatnonzero(j.gold < 0) if (j.item == i).sum() >= 3]
    table, _ = aggregate_raters(np.array(rows), n_cat=4)
    assert report.fleiss_kappa.value == pytest.approx(quiet(sm_fleiss_kappa, table, method="fleiss"), abs=TOL)
    assert report.fleiss_kappa.n == len(rows)

    # Krippendorff's alpha (krippendorff) on the regular items.
    reference = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert report.krippendorff_alpha.value == pytest.approx(reference, abs=TOL)

    # Percent agreement: per regular item, the share of its pairs that agree, averaged.
    shares = []
    for column in matrix.T:
        labels = column[~np.isnan(column)]
        if labels.size >= 2:
            pairs = list(itertools.combinations(labels, 2))
            shares.append(np.mean([x == y for x, y in pairs]))
    assert report.agreement.value == pytest.approx(np.mean(shares), abs=TOL)

    # Gold accuracy stays what it was: every judgment of a gold item against its answer.
    on_gold = j.gold[j.item] >= 0
    assert report.gold_accuracy.value == pytest.approx((j.label[on_gold] == j.gold[j.item][on_gold]).mean())


def with_gold_items(j: Judgments, *, n_gold: int, rng: np.random.Generator) -> Judgments:
    """The batch plus n_gold gold items that every annotator judged, all but one answer right: the easy,
    widely shared items that used to lift agreement."""
    answers = rng.integers(0, 2, size=n_gold)
    item = np.repeat(np.arange(j.n_items, j.n_items + n_gold), j.n_annotators)
    annotator = np.tile(np.arange(j.n_annotators), n_gold)
    label = answers[item - j.n_items].copy()
    label[0] = 1 - label[0]
    return Judgments(
        item=np.concatenate([j.item, item]),
        annotator=np.concatenate([j.annotator, annotator]),
        label=np.concatenate([j.label, label]),
        n_items=j.n_items + n_gold,
        n_annotators=j.n_annotators,
        seconds=np.concatenate([j.seconds, np.full(item.size, 20.0)]),
        shown_left=np.concatenate([j.shown_left, rng.random(item.size) < 0.5]),
        gold=np.concatenate([j.gold, answers]),
        longer=np.concatenate([j.longer, np.full(n_gold, -1)]),
        criteria=np.ones(j.n_items + n_gold, np.int64),
    )


def test_adding_gold_items_changes_no_agreement_figure_and_only_gold_accuracy():
    before = crowd_batch(3, problem="random")
    after = with_gold_items(before, n_gold=40, rng=np.random.default_rng(0))
    old, new = batch_report(before, raters=3), batch_report(after, raters=3)
    for name in ("cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "agreement"):
        assert getattr(new, name) == getattr(old, name), name
    for a, b in zip(old.annotators, new.annotators, strict=True):
        assert a.consensus_kappa == b.consensus_kappa
        assert a.consensus_agreement == b.consensus_agreement
        assert a.longer_excess == b.longer_excess
        assert b.gold_accuracy.n == a.gold_accuracy.n + 40
    assert new.gold_accuracy.n == old.gold_accuracy.n + 40 * before.n_annotators
    # The flags that read agreement say the same; gold accuracy (now over many more items) may differ.
    agreement_codes = {"batch_kappa", "batch_agreement", "below_peers", "consensus_kappa_low"}

    def agreement_flags(report):
        return [(f.code, f.annotator, f.level) for f in flags_for(report) if f.code in agreement_codes]

    assert agreement_flags(new) == agreement_flags(old)


def test_gold_items_no_longer_lift_agreement_on_the_demo_history():
    from tests.rewards.demo_history import demo_history_judgments

    j, _ = demo_history_judgments()
    with_gold = batch_report(_all_items(j))
    regular = batch_report(j)
    assert regular.cohen_kappa.value < with_gold.cohen_kappa.value - 0.05  # gold items are easy: they inflated it


def _all_items(j: Judgments) -> Judgments:
    """The same judgments with no item marked gold: agreement as it was computed before, gold included."""
    return Judgments(
        item=j.item,
        annotator=j.annotator,
        label=j.label,
        n_items=j.n_items,
        n_annotators=j.n_annotators,
        seconds=j.seconds,
        shown_left=j.shown_left,
        gold=np.full(j.n_items, -1),
        longer=j.longer,
    )
