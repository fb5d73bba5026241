"""evaluation.metrics against references on the same data: a plain bootstrap loop written here, statsmodels' Logit
and scikit-learn's LogisticRegression; degenerate data gives documented, JSON-safe answers."""

import importlib
import json
import math
import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.linear_model import LogisticRegression

from evaluation.metrics import (
    ELO_SCALE,
    Estimate,
    bradley_terry,
    bradley_terry_bootstrap,
    cluster_draws,
    flags,
    length_controlled_win_rate,
    rate,
    spearman,
    to_elo,
    win_probability,
    win_rate,
    win_rates_by,
)

TOL = 1e-6


def judgments(seed: int, *, prompts: int = 60, per_prompt: tuple[int, int] = (1, 4), p_win: float = 0.6):
    """Scores with ties and both-bads, prompt ids that are neither dense nor sorted, and a length difference that
    pushes the vote (so the length-controlled rate differs from the raw one)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(per_prompt[0], per_prompt[1] + 1, size=prompts)
    ids = rng.permutation(10_000)[:prompts] * 7 + 3
    cluster = np.repeat(ids, sizes)
    length_diff = np.repeat(rng.normal(0, 120, prompts).round(), sizes)
    p = 1 / (1 + np.exp(-(math.log(p_win / (1 - p_win)) + length_diff / 150)))
    outcome = rng.random(cluster.size)
    score = np.where(outcome < 0.15, 0.5, (rng.random(cluster.size) < p).astype(float))
    both_bad = (outcome < 0.05) & (score == 0.5)
    return score, both_bad, cluster, length_diff


def plain_bootstrap(values, cluster, statistic, *, resamples, seed, level=0.95):
    """The textbook loop: draw prompts with replacement, gather all their judgments, compute, take percentiles."""
    ids = np.unique(cluster)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(cluster == c) for c in ids]
    samples = []
    for _ in range(resamples):
        drawn = rng.integers(0, ids.size, size=ids.size)
        rows = np.concatenate([members[d] for d in drawn])
        samples.append(statistic(*(v[rows] for v in values)))
    tail = 100 * (1 - level) / 2
    return np.percentile(samples, [tail, 100 - tail])


def json_safe(payload) -> str:
    return json.dumps(payload, allow_nan=False)


# --- win rates and rates --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_win_rate_interval_is_the_plain_clustered_bootstrap(seed):
    score, _, cluster, _ = judgments(seed)
    result = win_rate(score, cluster, resamples=400, seed=seed + 10)
    low, high = plain_bootstrap([score], cluster, np.mean, resamples=400, seed=seed + 10)
    assert result.value == pytest.approx(score.mean(), abs=1e-12)
    assert result.low == pytest.approx(low, abs=1e-12)
    assert result.high == pytest.approx(high, abs=1e-12)
    assert (result.n, result.clusters) == (score.size, np.unique(cluster).size)
    assert result.note is None


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 40), st.sampled_from([(1, 1), (1, 5), (3, 3)]))
def test_win_rate_equals_the_plain_bootstrap_on_random_batches(seed, prompts, per_prompt):
    score, _, cluster, _ = judgments(seed, prompts=prompts, per_prompt=per_prompt)
    result = win_rate(score, cluster, resamples=50, seed=seed)
    low, high = plain_bootstrap([score], cluster, np.mean, resamples=50, seed=seed)
    assert result.low == pytest.approx(low, abs=1e-12)
    assert result.high == pytest.approx(high, abs=1e-12)


def test_rate_is_the_same_bootstrap_on_flags():
    _, both_bad, cluster, _ = judgments(4)
    result = rate(both_bad, cluster, resamples=300, seed=5)
    low, high = plain_bootstrap([both_bad.astype(float)], cluster, np.mean, resamples=300, seed=5)
    assert result.value == pytest.approx(both_bad.mean())
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-12)


def test_other_levels_take_other_percentiles():
    score, _, cluster, _ = judgments(6)
    wide = win_rate(score, cluster, resamples=300, seed=1, level=0.99)
    narrow = win_rate(score, cluster, resamples=300, seed=1, level=0.8)
    low, high = plain_bootstrap([score], cluster, np.mean, resamples=300, seed=1, level=0.8)
    assert (narrow.low, narrow.high) == pytest.approx((low, high), abs=1e-12)
    assert wide.low < narrow.low and wide.high > narrow.high


def test_bootstrap_resamples_prompts_not_judgments():
    """When every judgment of a prompt agrees, the clustered interval is about sqrt(judgments per prompt) wider
    than a bootstrap of independent judgments would give: resampling judgments would be overconfident."""
    rng = np.random.default_rng(3)
    prompts, per = 400, 9
    cluster = np.repeat(np.arange(prompts), per)
    score = np.repeat((rng.random(prompts) < 0.6).astype(float), per)
    clustered = win_rate(score, cluster, resamples=2000, seed=0)
    independent = win_rate(score, np.arange(score.size), resamples=2000, seed=0)
    ratio = (clustered.high - clustered.low) / (independent.high - independent.low)
    assert 2.4 < ratio < 3.6  # sqrt(9) = 3


def test_cluster_draws_follow_the_documented_generator(monkeypatch):
    rng = np.random.default_rng(42)
    expected = np.stack([rng.integers(0, 13, size=13) for _ in range(7)])
    assert np.array_equal(cluster_draws(13, 7, 42), expected)
    assert np.array_equal(expected, np.random.default_rng(42).integers(0, 13, size=(7, 13)))
    # Drawn in chunks of one or two rows (how memory stays bounded on big batches): the same resamples and results.
    score, _, cluster, length_diff = judgments(12, prompts=40)
    whole = win_rate(score, cluster, resamples=25, seed=3)
    whole_lc = length_controlled_win_rate(score, length_diff, cluster, resamples=25, seed=3)
    monkeypatch.setattr(importlib.import_module("evaluation.metrics.bootstrap"), "_CHUNK_CELLS", 26)
    assert np.array_equal(cluster_draws(13, 7, 42), expected)
    assert win_rate(score, cluster, resamples=25, seed=3) == whole
    assert length_controlled_win_rate(score, length_diff, cluster, resamples=25, seed=3) == whole_lc


def test_simulated_annotators_preferring_the_candidate_70_percent():
    rng = np.random.default_rng(11)
    cluster = np.repeat(np.arange(500), 3)
    prefers = rng.random(500) < 0.7
    agree = rng.random(cluster.size) < 0.9
    score = np.where(agree, prefers[cluster], ~prefers[cluster]).astype(float)
    result = win_rate(score, cluster, resamples=1000, seed=0)
    assert result.low < 0.7 * 0.9 + 0.3 * 0.1 < result.high  # the population win rate: 0.66
    assert result.low > 0.5


def test_determinism_by_seed():
    score, _, cluster, length_diff = judgments(8)
    assert win_rate(score, cluster, resamples=200, seed=3) == win_rate(score, cluster, resamples=200, seed=3)
    assert win_rate(score, cluster, resamples=200, seed=3) != win_rate(score, cluster, resamples=200, seed=4)
    lc = length_controlled_win_rate(score, length_diff, cluster, resamples=200, seed=3)
    assert lc == length_controlled_win_rate(score, length_diff, cluster, resamples=200, seed=3)


def test_win_rates_by_group_bootstrap_each_group_on_its_own_prompts():
    score, _, cluster, _ = judgments(9, prompts=80)
    groups = np.where(cluster % 3 == 0, "red_team", "usage")
    result = win_rates_by(groups, score, cluster, resamples=200, seed=2)
    assert list(result) == ["red_team", "usage"]
    for name, estimate in result.items():
        mask = groups == name
        assert estimate == win_rate(score[mask], cluster[mask], resamples=200, seed=2)


def test_scores_outside_zero_one_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        win_rate(np.array([1.0, 2.0]), np.array([0, 1]), resamples=10, seed=0)
    with pytest.raises(ValueError, match="0/1"):
        rate(np.array([0, 2]), np.array([0, 1]), resamples=10, seed=0)


@pytest.mark.parametrize(
    ("score", "cluster", "note"),
    [
        (np.array([]), np.array([], dtype=int), "no judgments"),
        (np.array([1.0, 0.5, 0.0]), np.array([7, 7, 7]), "one prompt"),
    ],
)
def test_degenerate_win_rates_are_json_safe(score, cluster, note):
    result = win_rate(score, cluster, resamples=100, seed=0)
    assert note in result.note
    json_safe(result.as_dict())
    if score.size:
        assert result.low == result.high == result.value
    else:
        assert result.value is result.low is result.high is None


def test_all_wins_interval_is_the_point():
    result = win_rate(np.ones(20), np.arange(20) // 2, resamples=100, seed=0)
    assert (result.value, result.low, result.high) == (1.0, 1.0, 1.0)


# --- length-controlled win rate -------------------------------------------------------------------------------------


def expanded_logit(score, length_diff, scale):
    """statsmodels Logit on two rows per judgment: (1, 1) a win, (1, 0) a tie or both bad, (0, 0) a loss."""
    x = np.concatenate([length_diff, length_diff]) / scale
    y = np.concatenate([(score > 0).astype(float), (score == 1).astype(float)])
    return sm.Logit(y, np.column_stack([np.ones_like(x), x])).fit(method="newton", tol=1e-14, maxiter=200, disp=0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_length_controlled_win_rate_matches_statsmodels_logit(seed):
    score, _, cluster, length_diff = judgments(seed, prompts=150)
    result = length_controlled_win_rate(score, length_diff, cluster, resamples=50, seed=0)
    assert result.scale == pytest.approx(length_diff.std())
    fit = expanded_logit(score, length_diff, result.scale)
    assert result.intercept == pytest.approx(fit.params[0], abs=TOL)
    assert result.slope == pytest.approx(fit.params[1], abs=TOL)
    assert result.value == pytest.approx(1 / (1 + math.exp(-fit.params[0])), abs=TOL)
    assert result.raw == pytest.approx(score.mean())
    assert result.note is None
    assert result.low <= result.value <= result.high


def test_length_controlled_interval_is_a_plain_bootstrap_of_statsmodels_fits():
    score, _, cluster, length_diff = judgments(5, prompts=50)
    scale = length_diff.std()
    result = length_controlled_win_rate(score, length_diff, cluster, resamples=40, seed=9)

    def statistic(s, d):
        fit = expanded_logit(s, d, scale)
        return 1 / (1 + math.exp(-fit.params[0]))

    low, high = plain_bootstrap([score, length_diff], cluster, statistic, resamples=40, seed=9)
    assert (result.low, result.high) == pytest.approx((low, high), abs=TOL)


def test_length_controlled_rate_removes_a_length_advantage():
    """Annotators indifferent at equal length but fond of long answers: the candidate writes longer, so its raw
    win rate is high while the length-controlled one stays near 0.5."""
    rng = np.random.default_rng(1)
    n = 4000
    length_diff = rng.normal(150, 100, n).round()
    p = 1 / (1 + np.exp(-length_diff / 80))
    score = (rng.random(n) < p).astype(float)
    result = length_controlled_win_rate(score, length_diff, np.arange(n) // 2, resamples=200, seed=0)
    assert result.raw > 0.75
    assert result.low < 0.5 < result.high
    assert abs(result.value - 0.5) < 0.05


@pytest.mark.parametrize(
    ("score", "length_diff", "fragment", "value"),
    [
        (np.ones(12), np.arange(12.0), "same outcome", 1.0),
        (np.zeros(12), np.arange(12.0), "same outcome", 0.0),
        (np.array([1, 0, 0.5, 1, 1, 0] * 2, dtype=float), np.full(12, 30.0), "same length difference", 7 / 12),
        (
            np.array([0, 0, 0, 1, 1, 1] * 2, dtype=float),
            np.array([-3, -2, -1, 1, 2, 3] * 2, dtype=float),
            "separates",
            0.5,
        ),
        # Quasi-separation: the two outcomes meet at one length difference, where a tie sits.
        (np.array([0, 0, 0.5, 1, 1] * 2, dtype=float), np.array([-2, -1, 0, 1, 2] * 2, dtype=float), "separates", 0.5),
    ],
    ids=["all wins", "all losses", "no length variation", "separated", "quasi-separated"],
)
def test_length_controlled_degenerate_data_falls_back_to_the_raw_rate(score, length_diff, fragment, value):
    cluster = np.arange(score.size) // 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = length_controlled_win_rate(score, length_diff, cluster, resamples=200, seed=0)
    assert fragment in result.note
    assert result.value == pytest.approx(value)
    assert result.value == result.raw
    assert result.intercept is None and result.slope is None
    assert result.low <= result.value <= result.high
    raw = win_rate(score, cluster, resamples=200, seed=0)
    assert (result.low, result.high) == (raw.low, raw.high)
    json_safe(result.as_dict())


def test_length_controlled_all_ties_is_an_even_fit():
    result = length_controlled_win_rate(np.full(10, 0.5), np.arange(10.0), np.arange(10), resamples=100, seed=0)
    assert result.note is None
    assert result.value == pytest.approx(0.5)
    assert result.slope == pytest.approx(0.0, abs=1e-12)


def test_length_controlled_resamples_that_separate_are_counted():
    # Overlap comes from a single prompt: resamples that miss it are separated and count with their raw rate.
    score = np.array([0, 0, 0, 1, 1, 1, 0, 1], dtype=float)
    length_diff = np.array([-3, -2, -1, 1, 2, 3, 5, -5], dtype=float)
    cluster = np.array([0, 1, 2, 3, 4, 5, 6, 6])
    result = length_controlled_win_rate(score, length_diff, cluster, resamples=200, seed=1)
    assert result.slope is not None
    assert "resamples could not be fitted" in result.note
    assert math.isfinite(result.low) and math.isfinite(result.high)
    json_safe(result.as_dict())


def test_length_controlled_empty_and_one_prompt():
    empty = length_controlled_win_rate(np.array([]), np.array([]), np.array([], dtype=int), resamples=10, seed=0)
    assert empty.value is None and empty.note == "no judgments"
    json_safe(empty.as_dict())
    one = length_controlled_win_rate(
        np.array([1.0, 0.0, 0.5, 1.0]), np.array([3.0, -2.0, 1.0, 9.0]), np.zeros(4, int), resamples=10, seed=0
    )
    assert "one prompt" in one.note and one.low == one.high == one.value


# --- Bradley-Terry --------------------------------------------------------------------------------------------------


def comparisons(seed: int, *, players: int = 6, n: int = 800, tie_share: float = 0.15):
    rng = np.random.default_rng(seed)
    strength = rng.normal(0, 0.8, players)
    a = rng.integers(0, players, n)
    b = (a + rng.integers(1, players, n)) % players
    a_wins = rng.random(n) < 1 / (1 + np.exp(-(strength[a] - strength[b])))
    tie = rng.random(n) < tie_share
    winner = np.where(a_wins, a, b)
    loser = np.where(a_wins, b, a)
    cluster = rng.integers(0, n // 4, n) * 3 + 1
    return winner, loser, tie, cluster


def design(winner, loser, tie, players, anchor):
    """The +-1 design (winner +1, loser -1, anchor column dropped), two rows per judgment: y = (1, 1) for a win,
    (1, 0) for a tie. Every other judgment is mirrored (-x, 1 - y) so both classes appear."""
    n = winner.size
    x = np.zeros((n, players))
    x[np.arange(n), winner] = 1.0
    x[np.arange(n), loser] = -1.0
    x = np.delete(x, anchor, axis=1)
    mirror = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)[:, None]
    y_first = np.ones(n)
    y_second = np.where(tie, 0.0, 1.0)
    xs = np.vstack([x * mirror, x * mirror])
    ys = np.concatenate([y_first, y_second])
    ys = np.where(np.concatenate([mirror[:, 0], mirror[:, 0]]) < 0, 1 - ys, ys)
    return xs, ys


@pytest.mark.parametrize(("seed", "anchor"), [(0, 0), (1, 0), (2, 3), (3, 5)])
def test_bradley_terry_matches_statsmodels_and_sklearn(seed, anchor):
    players = 6
    winner, loser, tie, _ = comparisons(seed, players=players)
    ratings = bradley_terry(winner, loser, tie, players, anchor=anchor)
    x, y = design(winner, loser, tie, players, anchor)
    logit = sm.Logit(y, x).fit(method="newton", tol=1e-14, maxiter=200, disp=0)
    sklearn = LogisticRegression(C=np.inf, fit_intercept=False, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    sklearn.fit(x, y)
    ours = np.delete(ratings.theta, anchor)
    assert ratings.theta[anchor] == 0.0
    np.testing.assert_allclose(ours, logit.params, atol=TOL, rtol=0)
    np.testing.assert_allclose(ours, sklearn.coef_[0], atol=TOL, rtol=0)
    assert ratings.note is None
    assert ratings.comparisons.sum() == 2 * winner.size


def test_bradley_terry_orders_players_as_simulated():
    rng = np.random.default_rng(0)
    strength = np.array([0.0, 0.4, 0.8, 1.2])
    a = rng.integers(0, 4, 20_000)
    b = (a + rng.integers(1, 4, a.size)) % 4
    a_wins = rng.random(a.size) < 1 / (1 + np.exp(-(strength[a] - strength[b])))
    ratings = bradley_terry(np.where(a_wins, a, b), np.where(a_wins, b, a), np.zeros(a.size, bool), 4)
    assert list(np.argsort(ratings.theta)) == [0, 1, 2, 3]
    np.testing.assert_allclose(ratings.theta, strength, atol=0.08)


def test_bradley_terry_unconnected_players_are_not_rated():
    # Players 0-1-2 compare among themselves; 3 and 4 only with each other; 5 never plays.
    winner = np.array([0, 1, 2, 1, 0, 2, 3, 4])
    loser = np.array([1, 2, 0, 0, 2, 1, 4, 3])
    ratings = bradley_terry(winner, loser, np.zeros(8, bool), 6, anchor=0)
    assert np.isfinite(ratings.theta[:3]).all()
    assert np.isnan(ratings.theta[3:]).all()
    assert "players 3, 4, 5" in ratings.note
    rows = ratings.rows(labels=[f"m{i}" for i in range(6)])
    assert [row["rated"] for row in rows] == [True, True, True, False, False, False]
    assert rows[3]["theta"] is None and rows[3]["elo"] is None and rows[5]["comparisons"] == 0
    json_safe(rows)


def test_bradley_terry_player_who_won_everything_is_smoothed_and_first():
    winner = np.array([0, 1, 2, 2, 2, 0, 1])
    loser = np.array([1, 0, 0, 1, 0, 1, 0])
    tie = np.zeros(7, bool)
    ratings = bradley_terry(winner, loser, tie, 3)
    assert "virtual tie" in ratings.note
    assert np.isfinite(ratings.theta).all()
    assert np.argmax(ratings.theta) == 2
    # The smoothed fit is the plain fit of the data with one tie added to every compared pair.
    smoothed = bradley_terry(
        np.concatenate([winner, [0, 0, 1]]), np.concatenate([loser, [1, 2, 2]]), np.r_[tie, True, True, True], 3
    )
    np.testing.assert_allclose(ratings.theta, smoothed.theta, atol=1e-9)


def test_bradley_terry_ties_only_rate_everyone_equal():
    winner, loser = np.array([0, 1, 2]), np.array([1, 2, 0])
    ratings = bradley_terry(winner, loser, np.ones(3, bool), 3)
    np.testing.assert_allclose(ratings.theta, 0.0, atol=1e-12)
    assert ratings.note is None


def test_bradley_terry_no_judgments_rates_only_the_anchor():
    empty = np.array([], dtype=int)
    ratings = bradley_terry_bootstrap(empty, empty, empty.astype(bool), empty, 3, anchor=1, resamples=50, seed=0)
    assert ratings.theta[1] == 0.0 and np.isnan(ratings.theta[[0, 2]]).all()
    json_safe(ratings.rows())


def test_bradley_terry_bootstrap_is_a_plain_bootstrap_of_logistic_fits():
    players = 4
    winner, loser, tie, cluster = comparisons(7, players=players, n=240)
    ratings = bradley_terry_bootstrap(winner, loser, tie, cluster, players, anchor=0, resamples=30, seed=4)

    def statistic(won, lost, tied):
        x, y = design(won, lost, tied, players, 0)
        return sm.Logit(y, x).fit(method="newton", tol=1e-14, maxiter=200, disp=0).params

    ids = np.unique(cluster)
    rng = np.random.default_rng(4)
    members = [np.flatnonzero(cluster == c) for c in ids]
    samples = []
    for _ in range(30):
        rows = np.concatenate([members[d] for d in rng.integers(0, ids.size, size=ids.size)])
        samples.append(statistic(winner[rows], loser[rows], tie[rows]))
    low, high = np.percentile(np.array(samples), [2.5, 97.5], axis=0)
    np.testing.assert_allclose(ratings.low[1:], low, atol=TOL, rtol=0)
    np.testing.assert_allclose(ratings.high[1:], high, atol=TOL, rtol=0)
    assert ratings.low[0] == ratings.high[0] == 0.0
    assert (ratings.low <= ratings.theta).all() and (ratings.theta <= ratings.high).all()
    assert ratings.resamples_used == 30


def test_bradley_terry_bootstrap_batched_newton_equals_the_general_fit(monkeypatch):
    module = importlib.import_module("evaluation.metrics.bradley_terry")  # the package exports a function by that name

    winner, loser, tie, cluster = comparisons(3, players=5, n=600)
    batched = bradley_terry_bootstrap(winner, loser, tie, cluster, 5, anchor=2, resamples=80, seed=6)
    calls = []

    def refuse(first, second, wins, total, full, anchor):
        calls.append(wins.shape[0])
        return np.full((wins.shape[0], full.theta.size), np.nan), np.zeros(wins.shape[0], bool)

    monkeypatch.setattr(module, "_fit_batch", refuse)
    general = bradley_terry_bootstrap(winner, loser, tie, cluster, 5, anchor=2, resamples=80, seed=6)
    assert sum(calls) == 80  # every resample was regular: the batched path did all the work above
    np.testing.assert_allclose(batched.low, general.low, atol=1e-9, rtol=0)
    np.testing.assert_allclose(batched.high, general.high, atol=1e-9, rtol=0)


def test_bradley_terry_bootstrap_determinism_and_seed():
    winner, loser, tie, cluster = comparisons(8)
    first = bradley_terry_bootstrap(winner, loser, tie, cluster, 6, resamples=60, seed=1)
    again = bradley_terry_bootstrap(winner, loser, tie, cluster, 6, resamples=60, seed=1)
    other = bradley_terry_bootstrap(winner, loser, tie, cluster, 6, resamples=60, seed=2)
    assert np.array_equal(first.low, again.low) and np.array_equal(first.high, again.high)
    assert not np.array_equal(first.low, other.low)


def test_bradley_terry_bootstrap_leaves_out_resamples_without_a_chain():
    # Player 3 is reached through one prompt only: resamples that miss it cannot rate player 3.
    winner = np.array([0, 1, 2, 1, 0, 2, 3, 2])
    loser = np.array([1, 2, 0, 0, 2, 1, 2, 3])
    cluster = np.array([0, 1, 2, 3, 4, 5, 6, 6])
    ratings = bradley_terry_bootstrap(winner, loser, np.zeros(8, bool), cluster, 4, resamples=100, seed=0)
    assert np.isfinite(ratings.low).all() and np.isfinite(ratings.high).all()
    assert "no chain to the anchor" in ratings.note


def test_bad_player_indices_are_refused():
    with pytest.raises(ValueError, match="itself"):
        bradley_terry(np.array([1]), np.array([1]), np.array([False]), 3)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        bradley_terry(np.array([0]), np.array([3]), np.array([False]), 3)


def test_elo_scale():
    assert pytest.approx(400 / math.log(10)) == ELO_SCALE
    assert to_elo(math.log(10)) == pytest.approx(400.0)
    assert win_probability(math.log(3), 0.0) == pytest.approx(0.75)
    ratings = bradley_terry(*comparisons(1)[:3], 6)
    np.testing.assert_allclose(ratings.elo(), ratings.theta * 400 / math.log(10))
    rows = ratings.rows()
    assert rows[2]["elo"] == pytest.approx(rows[2]["theta"] * ELO_SCALE)
    assert rows[0]["anchor"] and rows[0]["elo"] == 0.0


# --- Spearman and flags ---------------------------------------------------------------------------------------------


def test_spearman_matches_scipy_and_is_none_when_undefined():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert spearman([1, 2, np.nan, 4], [1, 3, 2, 4]) == pytest.approx(1.0)
    assert spearman([1, 1, 1, 1], [1, 2, 3, 4]) is None
    assert spearman([1, 2], [2, 1]) is None
    assert spearman([], []) is None


def est(value, low, high, clusters=100):
    return Estimate(value=value, low=low, high=high, n=2 * clusters, clusters=clusters)


def test_flags_each_rule_with_its_numbers():
    checkpoints = [
        {"key": "base", "label": "base", "step": 0, "reward_mean": 0.10},
        {
            "key": 1,
            "label": "step 20",
            "step": 20,
            "win_rate_vs_previous": est(0.62, 0.57, 0.67),
            "reward_mean": 0.30,
            "reward_length_spearman": 0.2,
            "raw_value": 0.62,
            "lc_value": 0.60,
            "strata": {"usage": est(0.64, 0.58, 0.70), "red_team": est(0.55, 0.45, 0.65)},
        },
        {
            "key": 2,
            "label": "step 40",
            "step": 40,
            "win_rate_vs_previous": est(0.49, 0.44, 0.54),
            "reward_mean": 0.55,
            "reward_length_spearman": 0.71,
            "raw_value": 0.49,
            "lc_value": 0.36,
            "strata": {"usage": est(0.55, 0.50, 0.60), "red_team": est(0.38, 0.30, 0.46)},
        },
    ]
    raised = flags(checkpoints)
    assert {(f["key"], f["code"], f.get("rule")) for f in raised} == {
        (2, "diminishing_returns", None),
        (2, "reward_hacking", "reward_up_win_rate_flat"),
        (2, "reward_hacking", "length_correlation"),
        (2, "reward_hacking", "length_controlled_gap"),
        (2, "stratum_regression", None),
    }
    by_rule = {f.get("rule") or f["code"]: f for f in raised}
    assert by_rule["diminishing_returns"]["gain"] == pytest.approx(-0.01)
    assert "49.0 %" in by_rule["diminishing_returns"]["reason"]
    assert "3.0 points" in by_rule["diminishing_returns"]["reason"]
    assert "0.300" in by_rule["reward_up_win_rate_flat"]["reason"]
    assert "0.550" in by_rule["reward_up_win_rate_flat"]["reason"]
    assert "0.71" in by_rule["length_correlation"]["reason"]
    assert "13.0 points" in by_rule["length_controlled_gap"]["reason"]
    assert by_rule["stratum_regression"]["stratum"] == "red_team"
    assert "46.0 %" in by_rule["stratum_regression"]["reason"]
    json_safe(raised)


def test_flags_thresholds_and_boundaries():
    good = {"key": 1, "win_rate_vs_previous": est(0.54, 0.50, 0.58), "strata": {"x": est(0.45, 0.40, 0.50)}}
    # A gain of 4 points passes the default 3 % and fails a 5 % threshold; an upper bound of exactly 0.5 is not
    # under 0.5.
    assert flags([{"key": 0}, good]) == []
    assert [f["code"] for f in flags([{"key": 0}, good], {"diminishing_returns": 0.05})] == ["diminishing_returns"]
    # The first checkpoint is compared with nothing.
    assert flags([good]) == []
    lc = {"key": 1, "lc_value": 0.50, "raw_value": 0.60, "reward_length_spearman": 0.5}
    assert flags([lc]) == []
    assert {f["rule"] for f in flags([lc], {"length_control_gap": 0.05, "reward_length_spearman": 0.4})} == {
        "length_controlled_gap",
        "length_correlation",
    }


def test_flags_use_bradley_terry_without_a_direct_batch():
    checkpoints = [
        {"key": "a", "bt_theta": 0.0, "reward_mean": 1.0},
        {"key": "b", "bt_theta": 0.04, "reward_mean": 2.0},
        {"key": "c", "bt_theta": 0.5},
    ]
    raised = flags(checkpoints)
    assert [(f["key"], f["code"], f["source"]) for f in raised] == [("b", "diminishing_returns", "bradley_terry")]
    assert raised[0]["win_probability"] == pytest.approx(1 / (1 + math.exp(-0.04)))
    assert "Bradley–Terry" in raised[0]["reason"]


def test_flags_reward_rise_with_a_winning_checkpoint_is_not_hacking():
    checkpoints = [
        {"key": 0, "reward_mean": 0.1},
        {"key": 1, "reward_mean": 0.4, "win_rate_vs_previous": est(0.51, 0.45, 0.57)},
    ]
    assert [(f["code"], f.get("rule")) for f in flags(checkpoints)] == [("diminishing_returns", None)]
    empty = Estimate(value=None, low=None, high=None, n=0, clusters=0, note="no judgments")
    assert flags([{"key": 0, "reward_mean": 0.1}, {"key": 1, "reward_mean": 0.4, "win_rate_vs_previous": empty}]) == []
