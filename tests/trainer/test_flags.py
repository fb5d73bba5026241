"""Reward-model flags (trainer/flags.py) from the figures evaluate_rewards stores, checked against scipy and
statsmodels on the same pairs: the paired interval on the gain over "prefer the longer answer", McNemar on the same
correctness, Spearman's correlation of reward with length. No database: pure functions."""

import numpy as np
import pytest
from scipy.stats import spearmanr, ttest_rel
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.weightstats import DescrStatsW

from trainer.flags import RewardModelRules, gain_interval, reward_model_flags, run_flags
from trainer.ml.reward_model import _pair_accuracy, evaluate_rewards

RULES = RewardModelRules(margin=0.02, confidence=0.95, max_length_correlation=0.5)


def pairs(rng, n, *, model_right, longer_right, length_weight=0.0):
    """n validation pairs: the reward model ranks chosen first with probability model_right, the chosen answer is
    the longer one with probability longer_right; rewards lean on length by length_weight."""
    chosen_len = rng.integers(50, 400, n).astype(float)
    other = rng.integers(50, 400, n).astype(float)
    longer = rng.random(n) < longer_right
    rejected_len = np.where(longer, np.minimum(chosen_len, other) - 1, np.maximum(chosen_len, other) + 1)
    right = rng.random(n) < model_right
    base = rng.normal(0, 1, n)
    chosen = base + np.where(right, 1.0, -1.0) + length_weight * chosen_len / 100
    rejected = base + length_weight * rejected_len / 100
    return {
        "chosen_rewards": chosen,
        "rejected_rewards": rejected,
        "chosen_lengths": chosen_len,
        "rejected_lengths": rejected_len,
    }


def codes(evaluation, rules=RULES):
    return [flag.code for flag in reward_model_flags(evaluation, rules)]


@pytest.mark.parametrize("seed", range(5))
def test_the_interval_on_the_gain_is_scipy_s_and_statsmodels_paired_t_interval(seed):
    rng = np.random.default_rng(seed)
    data = pairs(rng, 40 + 30 * seed, model_right=0.75, longer_right=0.6)
    evaluation = evaluate_rewards(**data)
    model = _pair_accuracy(data["chosen_rewards"], data["rejected_rewards"])
    baseline = _pair_accuracy(data["chosen_lengths"], data["rejected_lengths"])
    low, high = gain_interval(
        mean=evaluation["accuracy_gain_over_longer"],
        sd=evaluation["accuracy_gain_over_longer_sd"],
        n=evaluation["n_pairs"],
        confidence=0.95,
    )
    scipy_interval = ttest_rel(model, baseline).confidence_interval(0.95)
    assert (low, high) == pytest.approx((scipy_interval.low, scipy_interval.high))
    assert (low, high) == pytest.approx(DescrStatsW(model - baseline).tconfint_mean(alpha=0.05))
    assert evaluation["accuracy_gain_over_longer"] == pytest.approx(
        evaluation["accuracy"] - evaluation["baseline_longer_accuracy"]
    )
    assert evaluation["n_model_beats_longer"] == int((model > baseline).sum())
    assert evaluation["n_longer_beats_model"] == int((model < baseline).sum())


def test_the_issue_s_reward_model_equal_to_the_length_baseline_is_flagged():
    # 13 pairs, the chosen answer longer in 11: a reward model that only measures length scores 11/13 = 0.846, as
    # does the baseline, and raised nothing before.
    chosen_len = np.array([300, 280, 260, 240, 220, 200, 180, 160, 140, 120, 100, 50, 40], dtype=float)
    rejected_len = np.array([100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 60, 80], dtype=float)
    evaluation = evaluate_rewards(
        chosen_rewards=chosen_len / 100,
        rejected_rewards=rejected_len / 100,
        chosen_lengths=chosen_len,
        rejected_lengths=rejected_len,
    )
    assert round(evaluation["accuracy"], 3) == round(evaluation["baseline_longer_accuracy"], 3) == 0.846
    flags = {flag.code: flag.detail for flag in reward_model_flags(evaluation, RULES)}
    assert set(flags) == {"not_better_than_length", "reward_tracks_length"}
    assert "accuracy 0.846 against 0.846" in flags["not_better_than_length"]
    assert "95% interval" in flags["not_better_than_length"]
    rho = spearmanr(np.concatenate([chosen_len, rejected_len]) / 100, np.concatenate([chosen_len, rejected_len]))
    assert f"{rho.statistic:+.2f}" in flags["reward_tracks_length"]


def test_a_reward_model_that_clearly_beats_the_baseline_is_not_flagged_and_mcnemar_agrees():
    rng = np.random.default_rng(7)
    data = pairs(rng, 400, model_right=0.9, longer_right=0.55)
    evaluation = evaluate_rewards(**data)
    assert codes(evaluation) == []
    model = data["chosen_rewards"] > data["rejected_rewards"]
    baseline = data["chosen_lengths"] > data["rejected_lengths"]  # no ties in these lengths
    table = [
        [np.sum(model & baseline), np.sum(model & ~baseline)],
        [np.sum(~model & baseline), np.sum(~model & ~baseline)],
    ]
    assert mcnemar(table, exact=True).pvalue < 1e-6


def test_a_small_gain_on_few_pairs_is_not_evidence_and_mcnemar_agrees():
    rng = np.random.default_rng(3)
    data = pairs(rng, 20, model_right=0.7, longer_right=0.6)
    evaluation = evaluate_rewards(**data)
    assert "not_better_than_length" in codes(evaluation)
    model = data["chosen_rewards"] > data["rejected_rewards"]
    baseline = data["chosen_lengths"] > data["rejected_lengths"]
    table = [
        [np.sum(model & baseline), np.sum(model & ~baseline)],
        [np.sum(~model & baseline), np.sum(~model & ~baseline)],
    ]
    assert mcnemar(table, exact=True).pvalue > 0.05


def test_the_margin_is_a_setting_the_interval_must_clear():
    rng = np.random.default_rng(11)
    evaluation = evaluate_rewards(**pairs(rng, 300, model_right=0.85, longer_right=0.6))
    low, _ = gain_interval(
        mean=evaluation["accuracy_gain_over_longer"],
        sd=evaluation["accuracy_gain_over_longer_sd"],
        n=evaluation["n_pairs"],
        confidence=0.95,
    )
    assert 0 < low < 0.5
    assert "not_better_than_length" not in codes(evaluation, RewardModelRules(margin=low - 0.01))
    assert "not_better_than_length" in codes(evaluation, RewardModelRules(margin=low + 0.01))


@pytest.mark.parametrize(("weight", "flagged"), [(0.0, False), (3.0, True)])
def test_reward_tracking_length_is_flagged_above_the_threshold(weight, flagged):
    rng = np.random.default_rng(5)
    data = pairs(rng, 200, model_right=0.9, longer_right=0.5, length_weight=weight)
    evaluation = evaluate_rewards(**data)
    rho = spearmanr(
        np.concatenate([data["chosen_rewards"], data["rejected_rewards"]]),
        np.concatenate([data["chosen_lengths"], data["rejected_lengths"]]),
    ).statistic
    assert evaluation["reward_length_spearman"] == pytest.approx(rho)
    assert ("reward_tracks_length" in codes(evaluation)) == flagged == bool(abs(rho) > 0.5)
    # The threshold is a setting: above |rho| nothing is flagged.
    assert "reward_tracks_length" not in codes(evaluation, RewardModelRules(max_length_correlation=abs(rho) + 0.01))


def test_no_pairs_and_old_evaluations():
    empty = evaluate_rewards(
        chosen_rewards=np.zeros(0),
        rejected_rewards=np.zeros(0),
        chosen_lengths=np.zeros(0),
        rejected_lengths=np.zeros(0),
    )
    assert codes(empty) == ["no_validation_pairs"]
    # Stored before the gain's spread was: the point estimate decides, and the detail says there is no interval.
    old = {"accuracy": 0.846, "baseline_longer_accuracy": 0.846, "n_pairs": 13, "reward_length_spearman": 0.1}
    [flag] = reward_model_flags(old, RULES)
    assert flag.code == "not_better_than_length" and "no interval" in flag.detail
    assert reward_model_flags({**old, "accuracy": 0.95}, RULES) == []


def test_only_succeeded_reward_models_are_judged():
    evaluation = {"accuracy": 0.5, "baseline_longer_accuracy": 0.8, "n_pairs": 50}
    assert run_flags(kind="reward_model", status="succeeded", evaluation=evaluation, reward_model_rules=RULES)
    assert run_flags(kind="reward_model", status="failed", evaluation=evaluation, reward_model_rules=RULES) == []
    assert (
        run_flags(kind="dpo", status="succeeded", evaluation={"reward_accuracy": 0.4}, reward_model_rules=RULES) == []
    )
    assert run_flags(kind="reward_model", status="succeeded", evaluation={}, reward_model_rules=RULES) == []
