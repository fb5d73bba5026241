"""rewards.metrics agreement and proportions against scikit-learn, statsmodels, krippendorff and scipy on random batches."""

import itertools
import warnings

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from rewards import metrics
from rewards.metrics import (
    NO_SHARED_ITEMS,
    SINGLE_LABEL,
    Judgments,
    binom_p_half,
    cohen_kappa,
    cohen_kappa_mean,
    fisher_less_p,
    fleiss_kappa,
    full_overlap_raters,
    krippendorff_alpha,
    pairwise_cohen_kappa,
    percent_agreement,
    proportion,
)

TOL = 1e-9
FAST = settings(max_examples=150, deadline=None)


@st.composite
def batches(draw, max_items: int = 25, max_annotators: int = 6) -> Judgments:
    """A random batch: any annotator may or may not judge any item, labels from a random subset of the four
    (so single-label and missing-label cases come up), judgments in a random order."""
    n_items = draw(st.integers(1, max_items))
    n_annotators = draw(st.integers(1, max_annotators))
    alphabet = sorted(draw(st.sets(st.integers(0, 3), min_size=1)))
    density = draw(st.sampled_from([0.3, 0.7, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    present = rng.random((n_items, n_annotators)) < density
    labels = rng.choice(alphabet, size=(n_items, n_annotators))
    item, annotator = np.nonzero(present)
    order = rng.permutation(item.size) if draw(st.booleans()) else np.arange(item.size)
    return Judgments(
        item=item[order],
        annotator=annotator[order],
        label=labels[item, annotator][order],
        n_items=n_items,
        n_annotators=n_annotators,
    )


def as_matrix(j: Judgments) -> np.ndarray:
    """annotators x items, NaN where missing (the krippendorff package's layout)."""
    matrix = np.full((j.n_annotators, j.n_items), np.nan)
    matrix[j.annotator, j.item] = j.label
    return matrix


def sklearn_kappa(a: np.ndarray, b: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(a, b))


# --- Cohen's kappa ---------------------------------------------------------------------------------


@FAST
@given(batches())
def test_pairwise_cohen_kappa_matches_sklearn_for_every_pair(j):
    matrix = as_matrix(j)
    pairs = pairwise_cohen_kappa(j)
    listed = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(pairs.annotator_a, pairs.annotator_b, strict=True))}
    expected_pairs = set()
    weighted, weights = 0.0, 0
    for a, b in itertools.combinations(range(j.n_annotators), 2):
        shared = ~np.isnan(matrix[a]) & ~np.isnan(matrix[b])
        if not shared.any():
            continue
        expected_pairs.add((a, b))
        i = listed[(a, b)]
        reference = sklearn_kappa(matrix[a, shared], matrix[b, shared])
        assert pairs.n_items[i] == shared.sum()
        if np.isnan(reference):
            assert not pairs.defined[i]
            assert pairs.rows()[i]["kappa"] is None and pairs.rows()[i]["reason"] == SINGLE_LABEL
            assert pairs.observed[i] == 1.0
        else:
            assert pairs.defined[i]
            assert abs(pairs.kappa[i] - reference) < TOL
            weighted += reference * shared.sum()
            weights += shared.sum()
    assert set(listed) == expected_pairs
    mean = cohen_kappa_mean(pairs)
    if weights:
        assert abs(mean.value - weighted / weights) < TOL
    else:
        assert mean.value is None and mean.reason in {NO_SHARED_ITEMS, SINGLE_LABEL}


@FAST
@given(batches(max_annotators=12))
def test_sparse_pair_counting_equals_dense(j):
    dense = pairwise_cohen_kappa(j)
    original = metrics.agreement._DENSE_PAIR_CELLS
    metrics.agreement._DENSE_PAIR_CELLS = 0
    try:
        sparse = pairwise_cohen_kappa(j)
    finally:
        metrics.agreement._DENSE_PAIR_CELLS = original
    assert np.array_equal(dense.annotator_a, sparse.annotator_a)
    assert np.array_equal(dense.annotator_b, sparse.annotator_b)
    assert np.array_equal(dense.n_items, sparse.n_items)
    assert np.array_equal(dense.defined, sparse.defined)
    assert np.allclose(dense.kappa, sparse.kappa, atol=0, rtol=0, equal_nan=True)


@FAST
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_cohen_kappa_of_two_label_arrays_matches_sklearn(pairs):
    a, b = np.array(pairs).T
    ours = cohen_kappa(a, b)
    reference = sklearn_kappa(a, b)
    if np.isnan(reference):
        assert ours.value is None and ours.reason == SINGLE_LABEL and ours.observed == 1.0
    else:
        assert abs(ours.value - reference) < TOL


# --- Fleiss' kappa ---------------------------------------------------------------------------------


@FAST
@given(batches(), st.sampled_from([None, 2, 3]))
def test_fleiss_kappa_matches_statsmodels_on_the_first_k_judgments(j, raters):
    k = full_overlap_raters(j) if raters is None else raters
    ours = fleiss_kappa(j, raters=raters)
    assert ours.raters == k
    rows = []
    for i in range(j.n_items):
        labels = j.label[j.item == i]  # array order: the first k made
        if labels.size >= k >= 2:
            rows.append(labels[:k])
    if not rows:
        assert ours.value is None and ours.reason == NO_SHARED_ITEMS
        return
    table, _ = aggregate_raters(np.array(rows), n_cat=4)
    assert ours.n == len(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = sm_fleiss_kappa(table, method="fleiss")
    if np.isnan(reference):
        assert ours.value is None and ours.reason == SINGLE_LABEL
    else:
        assert abs(ours.value - reference) < TOL


def test_full_overlap_is_the_most_common_count_and_keeps_items_that_got_more():
    # Items 0-2 have three judgments, item 3 four (adaptive overlap asked for one more), item 4 one.
    item = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4]
    label = [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 2, 0, 3]
    j = Judgments.from_arrays(item=item, annotator=[0, 1, 2] * 3 + [0, 1, 2, 3, 0], label=label)
    assert full_overlap_raters(j) == 3
    result = fleiss_kappa(j)
    assert result.raters == 3 and result.n == 4  # item 3 used with its first three judgments


# --- Krippendorff's alpha --------------------------------------------------------------------------


@FAST
@given(batches())
def test_krippendorff_alpha_matches_the_krippendorff_package(j):
    ours = krippendorff_alpha(j)
    pairable = j.item_counts >= 2
    if not pairable.any():
        assert ours.value is None and ours.reason == NO_SHARED_ITEMS
        return
    matrix = as_matrix(j)[:, pairable]
    if np.unique(matrix[~np.isnan(matrix)]).size < 2:
        assert ours.value is None and ours.reason == SINGLE_LABEL and ours.observed == 1.0
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert abs(ours.value - reference) < TOL


# --- Percent agreement -----------------------------------------------------------------------------


@FAST
@given(batches())
def test_percent_agreement_is_the_mean_over_items_of_agreeing_pairs(j):
    shares = []
    for i in range(j.n_items):
        labels = j.label[j.item == i]
        if labels.size >= 2:
            pairs = list(itertools.combinations(labels, 2))
            shares.append(sum(x == y for x, y in pairs) / len(pairs))
    ours = percent_agreement(j)
    if not shares:
        assert ours.value is None and ours.reason == NO_SHARED_ITEMS
    else:
        assert ours.n == len(shares)
        assert abs(ours.value - np.mean(shares)) < TOL
        assert ours.low <= ours.value <= ours.high


# --- Wilson intervals, binomial and Fisher p-values -----------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 100_000), st.floats(0, 1), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_interval_matches_statsmodels(n, share, confidence):
    k = round(share * n)
    ours = proportion(k, n, confidence)
    low, high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    assert abs(ours.low - low) < TOL and abs(ours.high - high) < TOL
    assert ours.value == k / n


def test_a_proportion_of_nothing_is_none_with_a_reason():
    empty = proportion(0, 0)
    assert (empty.value, empty.low, empty.high, empty.reason) == (None, None, None, "empty")


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 400), st.floats(0, 1))
def test_binomial_p_value_matches_scipy_binomtest(n, share):
    k = round(share * n)
    assert abs(binom_p_half(np.array([k]), np.array([n]))[0] - stats.binomtest(k, n, 0.5).pvalue) < TOL


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 200), st.integers(1, 200), st.floats(0, 1), st.floats(0, 1))
def test_fisher_less_matches_scipy(n_now, n_base, share_now, share_base):
    x_now, x_base = round(share_now * n_now), round(share_base * n_base)
    reference = stats.fisher_exact([[x_now, n_now - x_now], [x_base, n_base - x_base]], alternative="less").pvalue
    ours = fisher_less_p(np.array([x_now]), np.array([n_now]), np.array([x_base]), np.array([n_base]))[0]
    assert abs(ours - reference) < TOL


# --- Invalid input is a bug, not a degenerate batch -----------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"item": [0], "annotator": [0], "label": [4], "n_items": 1, "n_annotators": 1},
        {"item": [1], "annotator": [0], "label": [0], "n_items": 1, "n_annotators": 1},
        {"item": [0, 1], "annotator": [0], "label": [0, 0], "n_items": 2, "n_annotators": 1},
        {"item": [0.5], "annotator": [0], "label": [0], "n_items": 1, "n_annotators": 1},
        {"item": [0], "annotator": [0], "label": [0], "n_items": 1, "n_annotators": 1, "gold": [3]},
        {"item": [0], "annotator": [0], "label": [0], "n_items": 1, "n_annotators": 1, "seconds": [np.nan]},
        {"item": [0], "annotator": [0], "label": [0], "n_items": 1, "n_annotators": 1, "shown_left": [1]},
    ],
)
def test_malformed_arrays_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        Judgments(**kwargs)
