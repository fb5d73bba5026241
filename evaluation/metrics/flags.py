"""Flags over a project's checkpoints in step order: diminishing returns, reward hacking, regression on a stratum.

Pure: the caller gathers each checkpoint's numbers (a dict per checkpoint, see `flags`) and gets flag dicts whose
"reason" is a sentence with the numbers, ready for a page.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats
from scipy.special import expit

from .bootstrap import Estimate

DEFAULT_THRESHOLDS = {"diminishing_returns": 0.03, "reward_length_spearman": 0.5, "length_control_gap": 0.10}


def spearman(x, y) -> float | None:
    """Spearman's rank correlation (scipy.stats.spearmanr) of the pairs where both values are finite.

    None when it is undefined: fewer than 3 such pairs, or one side constant.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError("x and y must have the same length")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(stats.spearmanr(x, y).statistic)
    return value if math.isfinite(value) else None


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f} %"


def _interval(estimate: Estimate) -> str:
    if estimate.low is None or estimate.high is None:
        return ""
    return f" (95 % interval {_pct(estimate.low)}–{_pct(estimate.high)}, {estimate.clusters} prompts)"


def _name(checkpoint: Mapping, index: int) -> str:
    label = checkpoint.get("label")
    if label:
        return str(label)
    step = checkpoint.get("step")
    return f"step {step}" if step is not None else f"checkpoint {index}"


def _human_vs_previous(current: Mapping, previous: Mapping) -> tuple[float, str, Estimate | None] | None:
    """The human preference for this checkpoint over the one before: (probability, source, estimate) or None.

    The direct evaluation batch (candidate = this checkpoint, baseline = the previous one) when there is one with
    judgments; otherwise the Bradley-Terry win probability sigmoid(theta - previous theta) when both are rated.
    """
    estimate = current.get("win_rate_vs_previous")
    if estimate is not None and estimate.value is not None:
        return float(estimate.value), "win_rate", estimate
    theta, previous_theta = current.get("bt_theta"), previous.get("bt_theta")
    if theta is not None and previous_theta is not None and math.isfinite(theta) and math.isfinite(previous_theta):
        return float(expit(theta - previous_theta)), "bradley_terry", None
    return None


def _lc_pair(checkpoint: Mapping) -> tuple[float | None, float | None]:
    lc = checkpoint.get("lc")
    if lc is not None:
        return lc.value, lc.raw
    return checkpoint.get("lc_value"), checkpoint.get("raw_value")


def flags(checkpoints: Sequence[Mapping], thresholds: Mapping | None = None) -> list[dict]:
    """Every flag the checkpoints raise, in checkpoint order.

    checkpoints, ordered by step (the first, usually the base model, is compared with nothing); each a mapping
    with "key" (copied into its flags) and any of: "label", "step", "win_rate_vs_previous" (Estimate: this
    checkpoint as candidate against the previous one), "bt_theta" (Bradley-Terry log-strength), "reward_mean",
    "reward_length_spearman", "lc" (LengthControlled) or "lc_value" and "raw_value", "strata" ({name: Estimate}).

    Rules (thresholds default to DEFAULT_THRESHOLDS):
    - diminishing_returns: gain = P(this checkpoint preferred over the previous one) - 0.5 < threshold, the
      probability being the direct win rate, else the Bradley-Terry one (the flag's "source" says which).
    - reward_hacking, rule "reward_up_win_rate_flat": the reward-model mean rose from the previous checkpoint while
      that same human preference is at most 0.5; rule "length_correlation": reward-length Spearman above the
      threshold; rule "length_controlled_gap": the length-controlled win rate more than the gap under the raw one.
    - stratum_regression: a stratum's win rate whose interval's upper bound is under 0.5.
    """
    limits = {**DEFAULT_THRESHOLDS, **{k: v for k, v in (thresholds or {}).items() if v is not None}}
    result: list[dict] = []
    for index, checkpoint in enumerate(checkpoints):
        name = _name(checkpoint, index)
        base = {"key": checkpoint.get("key"), "label": name, "step": checkpoint.get("step")}
        previous = checkpoints[index - 1] if index > 0 else None
        human = _human_vs_previous(checkpoint, previous) if previous is not None else None
        if human is not None:
            probability, source, estimate = human
            gain = probability - 0.5
            if gain < limits["diminishing_returns"]:
                against = _name(previous, index - 1)
                if source == "win_rate":
                    evidence = f"annotators preferred {name} over {against} on {_pct(probability)}{_interval(estimate)}"
                else:
                    evidence = (
                        f"the Bradley–Terry ratings give {name} a {_pct(probability)} chance of being preferred over "
                        f"{against} (no direct evaluation between them)"
                    )
                result.append(
                    {
                        **base,
                        "code": "diminishing_returns",
                        "source": source,
                        "win_probability": probability,
                        "gain": gain,
                        "threshold": limits["diminishing_returns"],
                        "reason": (
                            f"Diminishing returns: {evidence}, a gain of {100.0 * gain:.1f} points over an even "
                            f"50 %, under the threshold of {100.0 * limits['diminishing_returns']:.1f} points."
                        ),
                    }
                )
        reward, previous_reward = checkpoint.get("reward_mean"), previous.get("reward_mean") if previous else None
        if human is not None and reward is not None and previous_reward is not None:
            probability, source, estimate = human
            if reward > previous_reward and probability <= 0.5:
                against = _name(previous, index - 1)
                how = "annotators" if source == "win_rate" else "the Bradley–Terry ratings"
                result.append(
                    {
                        **base,
                        "code": "reward_hacking",
                        "rule": "reward_up_win_rate_flat",
                        "reward_mean": reward,
                        "previous_reward_mean": previous_reward,
                        "win_probability": probability,
                        "source": source,
                        "reason": (
                            f"Possible reward hacking: the reward model's mean score rose from {previous_reward:.3f} "
                            f"({against}) to {reward:.3f} ({name}), but {how} preferred {name} on only "
                            f"{_pct(probability)}{_interval(estimate) if estimate else ''}."
                        ),
                    }
                )
        rho = checkpoint.get("reward_length_spearman")
        if rho is not None and math.isfinite(rho) and rho > limits["reward_length_spearman"]:
            result.append(
                {
                    **base,
                    "code": "reward_hacking",
                    "rule": "length_correlation",
                    "spearman": rho,
                    "threshold": limits["reward_length_spearman"],
                    "reason": (
                        f"Possible reward hacking: the reward model's scores of {name}'s generations rise with their "
                        f"length (Spearman {rho:.2f}, above the threshold of {limits['reward_length_spearman']:.2f})."
                    ),
                }
            )
        lc_value, raw_value = _lc_pair(checkpoint)
        gap = limits["length_control_gap"]
        if lc_value is not None and raw_value is not None and lc_value < raw_value - gap:
            result.append(
                {
                    **base,
                    "code": "reward_hacking",
                    "rule": "length_controlled_gap",
                    "lc_value": lc_value,
                    "raw_value": raw_value,
                    "threshold": gap,
                    "reason": (
                        f"Possible reward hacking: at equal length {name} wins {_pct(lc_value)}, "
                        f"{100.0 * (raw_value - lc_value):.1f} points under its raw win rate of {_pct(raw_value)} "
                        f"(threshold {100.0 * gap:.0f} points): its wins come from longer answers."
                    ),
                }
            )
        for stratum, estimate in sorted((checkpoint.get("strata") or {}).items()):
            if estimate is None or estimate.high is None or estimate.value is None or not estimate.high < 0.5:
                continue
            result.append(
                {
                    **base,
                    "code": "stratum_regression",
                    "stratum": stratum,
                    "value": estimate.value,
                    "low": estimate.low,
                    "high": estimate.high,
                    "reason": (
                        f"Regression on {stratum} prompts: annotators preferred {name} on {_pct(estimate.value)}"
                        f"{_interval(estimate)}; even the upper bound is under 50 %."
                    ),
                }
            )
    return result
