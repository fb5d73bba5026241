"""Warnings read from a finished run's stored evaluation: pure functions of that dict and the thresholds, no Django.

A reward model is flagged when it is not shown to beat the "prefer the longer answer" baseline (the lower end of a
paired interval on its accuracy gain is not above a margin), and when its rewards follow answer length (|Spearman| of
reward with length above a threshold): either way it may have learned length rather than quality. The thresholds are
settings (trainer.selectors.run_flags reads them); the figures come from trainer.ml.reward_model.evaluate_rewards.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Flag:
    code: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class RewardModelRules:
    margin: float = 0.02  # accuracy points the interval's lower end must clear above the length baseline
    confidence: float = 0.95  # of the two-sided interval on the gain
    max_length_correlation: float = 0.5  # |Spearman rho| of reward with answer length above this is flagged


def gain_interval(*, mean: float, sd: float, n: int, confidence: float) -> tuple[float, float]:
    """Two-sided t interval on a mean of n paired differences with sample standard deviation sd (ddof=1): the
    interval of scipy.stats.ttest_rel(model, baseline).confidence_interval(). With pairs scored 1 / 0 and no ties
    it is the Wald interval for the difference of paired proportions (McNemar's setting), with n - 1."""
    from scipy.stats import t

    half = t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def reward_model_flags(evaluation: dict, rules: RewardModelRules | None = None) -> list[Flag]:
    """The flags of a reward model's evaluation (keys of evaluate_rewards; older runs lack the gain's spread)."""
    rules = rules or RewardModelRules()
    flags = []
    n = int(_number(evaluation.get("n_pairs")) or 0)
    accuracy = _number(evaluation.get("accuracy"))
    baseline = _number(evaluation.get("baseline_longer_accuracy"))
    if n == 0 or accuracy is None or baseline is None:
        flags.append(
            Flag(
                "no_validation_pairs",
                "No validation pairs were scored: the reward model's accuracy and the length baseline are unknown.",
            )
        )
    else:
        gain = _number(evaluation.get("accuracy_gain_over_longer"))
        gain = accuracy - baseline if gain is None else gain
        sd = _number(evaluation.get("accuracy_gain_over_longer_sd"))
        level = f"{rules.confidence:.0%}"
        if sd is not None and n > 1:
            low, high = gain_interval(mean=gain, sd=sd, n=n, confidence=rules.confidence)
            evidence = f"gain {_signed(gain)}, {level} interval {_signed(low)} to {_signed(high)} over {n} pairs"
        else:
            low = gain  # one pair, or an evaluation stored before the spread was: the point estimate only
            evidence = f"gain {_signed(gain)} over {n} pair{'s' if n != 1 else ''}, no interval"
        if low <= rules.margin:
            flags.append(
                Flag(
                    "not_better_than_length",
                    f"Not shown to beat the 'prefer the longer answer' baseline by {rules.margin:g}: accuracy "
                    f"{accuracy:.3f} against {baseline:.3f} ({evidence}). It may have learned length rather than "
                    "quality; more validation pairs narrow the interval.",
                )
            )
    rho = _number(evaluation.get("reward_length_spearman"))
    if rho is not None and abs(rho) > rules.max_length_correlation:
        flags.append(
            Flag(
                "reward_tracks_length",
                f"Reward follows answer length: Spearman correlation {rho:+.2f} between reward and length in "
                f"characters (flagged above {rules.max_length_correlation:g} either way).",
            )
        )
    return flags


def run_flags(*, kind: str, status: str, evaluation: dict, reward_model_rules: RewardModelRules) -> list[Flag]:
    """The flags of a run: only a succeeded run has an evaluation to judge, and only reward models have rules yet."""
    if status != "succeeded" or not evaluation:
        return []
    if kind == "reward_model":
        return reward_model_flags(evaluation, reward_model_rules)
    return []
