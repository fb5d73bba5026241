"""Result types and the small vectorised tests every metric shares: Wilson intervals, binomial and Fisher p-values."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

# Why a statistic is None. Every undefined value in a result carries one of these.
EMPTY = "empty"  # nothing to compute on: no judgments, no gold items, no a/b choices...
NO_SHARED_ITEMS = "no_shared_items"  # no item was judged by two or more of the annotators in scope
SINGLE_LABEL = "single_label"  # chance agreement is 1: every judgment in scope has the same label
SINGLE_GROUP = "single_group"  # a comparison needs two groups with judgments
NO_CONSENSUS = "no_consensus"  # none of the annotator's items had a strict-plurality consensus of the others
NOT_RECORDED = "not_recorded"  # the optional array the statistic needs (seconds, sides, lengths, gold) was not given

DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Proportion:
    """successes / n with a Wilson interval; value, low and high are None (with a reason) when n is 0.

    successes may be fractional where the proportion is a mean of per-item shares (percent agreement).
    """

    successes: float
    n: int
    value: float | None
    low: float | None
    high: float | None
    reason: str | None = None


@dataclass(frozen=True)
class Coefficient:
    """A chance-corrected agreement coefficient (kappa, alpha).

    value is None exactly when reason is set. observed and expected are the agreement shares the
    coefficient is built from (for alpha: one minus the disagreements), None when there was no data.
    n counts the units used: items for Fleiss and alpha, shared items summed over pairs for a mean.
    """

    value: float | None
    reason: str | None
    n: int
    observed: float | None = None
    expected: float | None = None


def z_for(confidence: float) -> float:
    return float(stats.norm.isf((1.0 - confidence) / 2.0))


def wilson_arrays(
    successes: np.ndarray, n: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised Wilson score interval: (value, low, high), NaN where n is 0 (callers turn NaN into None)."""
    successes = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = z_for(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / n
        denominator = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denominator
        half = z / denominator * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    empty = n == 0
    # The interval always holds the estimate (rounding could leave 1 - 1e-16 above a share of 1).
    low = np.minimum(np.clip(centre - half, 0.0, 1.0), p)
    high = np.maximum(np.clip(centre + half, 0.0, 1.0), p)
    return np.where(empty, np.nan, p), np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def _maybe(value: float) -> float | None:
    return None if math.isnan(value) else value


def proportions(successes: np.ndarray, n: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> list[Proportion]:
    """One Proportion per entry of the arrays."""
    successes = np.atleast_1d(np.asarray(successes, dtype=np.float64))
    n = np.atleast_1d(np.asarray(n, dtype=np.int64))
    value, low, high = wilson_arrays(successes, n, confidence)
    return [
        Proportion(
            successes=s,
            n=count,
            value=_maybe(v),
            low=_maybe(lo),
            high=_maybe(hi),
            reason=EMPTY if count == 0 else None,
        )
        for s, count, v, lo, hi in zip(
            successes.tolist(), n.tolist(), value.tolist(), low.tolist(), high.tolist(), strict=True
        )
    ]


def proportion(successes: float, n: int, confidence: float = DEFAULT_CONFIDENCE) -> Proportion:
    """successes out of n with its Wilson interval (statsmodels' proportion_confint(method="wilson"))."""
    return proportions(np.array([successes]), np.array([n]), confidence)[0]


def binom_p_half(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Two-sided exact binomial p-value against p = 1/2, vectorised; NaN where n is 0.

    For p = 1/2 the distribution is symmetric, so scipy's binomtest (which sums every outcome no more
    likely than k) equals twice the smaller tail, capped at 1.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    tail = np.minimum(k, n - k)
    p = np.minimum(1.0, 2.0 * stats.binom.cdf(tail, n, 0.5))
    return np.where(n == 0, np.nan, p)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values for one family of tests, in the input order."""
    p_values = np.asarray(p_values, dtype=np.float64)
    m = p_values.size
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p_values[order]))
    return adjusted


def fisher_less_p(x_current: np.ndarray, n_current: np.ndarray, x_base: np.ndarray, n_base: np.ndarray) -> np.ndarray:
    """One-sided Fisher exact p-value that the current proportion is lower than the baseline, vectorised.

    Equals scipy.stats.fisher_exact([[x_current, n_current - x_current], [x_base, n_base - x_base]],
    alternative="less"); NaN where either sample is empty.
    """
    x_current = np.asarray(x_current, dtype=np.int64)
    n_current = np.asarray(n_current, dtype=np.int64)
    x_base = np.asarray(x_base, dtype=np.int64)
    n_base = np.asarray(n_base, dtype=np.int64)
    total = n_current + n_base
    p = stats.hypergeom.cdf(x_current, total, x_current + x_base, n_current)
    return np.where((n_current == 0) | (n_base == 0), np.nan, np.minimum(p, 1.0))


def kappa_from_confusions(confusions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cohen's kappa for a stack of square confusion matrices of counts, shape (m, k, k).

    Returns (kappa, observed, expected, defined). kappa is NaN where not defined: no counts, or chance
    agreement of exactly 1 (both raters used one and the same label throughout), which is tested on the
    integer counts so rounding never decides it.
    """
    confusions = np.asarray(confusions)
    n = confusions.sum(axis=(1, 2))
    rows = confusions.sum(axis=2)
    cols = confusions.sum(axis=1)
    agree = np.trace(confusions, axis1=1, axis2=2)
    single = (rows.max(axis=1) == n) & (cols.max(axis=1) == n) & (rows.argmax(axis=1) == cols.argmax(axis=1))
    defined = (n > 0) & ~single
    with np.errstate(divide="ignore", invalid="ignore"):
        nf = n.astype(np.float64)
        observed = agree / nf
        expected = (rows.astype(np.float64) * cols).sum(axis=1) / (nf * nf)
        kappa = np.where(defined, (observed - expected) / (1.0 - expected), np.nan)
    return kappa, observed, expected, defined


def coefficient_from(
    value: float, observed: float, expected: float, n: int, defined: bool, empty_reason: str
) -> Coefficient:
    """Wrap one vectorised kappa result in a Coefficient, naming why it is undefined."""
    if n == 0:
        return Coefficient(value=None, reason=empty_reason, n=0)
    if not defined:
        return Coefficient(value=None, reason=SINGLE_LABEL, n=n, observed=float(observed), expected=float(expected))
    return Coefficient(value=float(value), reason=None, n=n, observed=float(observed), expected=float(expected))
