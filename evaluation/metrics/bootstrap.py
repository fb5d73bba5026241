"""Win rates and 0/1 rates with a percentile bootstrap clustered by prompt: one resampling routine for every rate.

A judgment is seen from the candidate's side: score 1 when the candidate is preferred, 0.5 for a tie or both bad,
0 when the baseline is. The bootstrap resamples prompts (clusters) with replacement, each drawn prompt bringing all
its judgments, because judgments of one prompt are not independent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
# Resamples are drawn and reduced in chunks of about this many (resample, cluster) cells, so memory stays flat
# whatever the number of resamples; the draws do not depend on the chunking (see cluster_draws).
_CHUNK_CELLS = 1 << 21

NO_JUDGMENTS = "no judgments"
ONE_PROMPT = "one prompt only: the bootstrap cannot vary, the interval is the value"


@dataclass(frozen=True)
class Estimate:
    """A statistic with its percentile bootstrap interval. value is None only when there was no judgment."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    clusters: int
    note: str | None = None

    def as_dict(self) -> dict:
        """JSON-safe: floats or None, never NaN."""
        return {key: _json_safe(value) for key, value in asdict(self).items()}


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def as_float(value: float | np.floating | None) -> float | None:
    """A Python float, or None for None/NaN/inf."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def cluster_index(cluster: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense cluster numbers 0..C-1 in the order of the sorted distinct ids, and C."""
    cluster = np.asarray(cluster)
    if cluster.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    _, inverse = np.unique(cluster, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    return inverse, int(inverse.max()) + 1


def _chunk_rows(n_clusters: int, resamples: int) -> int:
    return max(1, min(resamples, _CHUNK_CELLS // max(1, n_clusters)))


def draw_chunks(n_clusters: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Successive blocks of rows of cluster_draws(n_clusters, resamples, seed)."""
    rng = np.random.default_rng(seed)
    rows = _chunk_rows(n_clusters, resamples)
    done = 0
    while done < resamples:
        take = min(rows, resamples - done)
        # NumPy draws a (rows, n) block element by element from the stream, so blocks of any height concatenate
        # to the single (resamples, n) draw (the tests check it).
        yield rng.integers(0, n_clusters, size=(take, n_clusters))
        done += take


def cluster_draws(n_clusters: int, resamples: int, seed: int) -> np.ndarray:
    """The clusters each resample draws, shape (resamples, n_clusters), numbered as cluster_index numbers them.

    `np.random.default_rng(seed).integers(0, n_clusters, size=(resamples, n_clusters))`, which is also row r =
    the r-th call of `rng.integers(0, n_clusters, size=n_clusters)`: a plain bootstrap loop written with that
    generator reproduces every resample of this module exactly.
    """
    if resamples <= 0 or n_clusters <= 0:
        return np.zeros((max(resamples, 0), max(n_clusters, 0)), dtype=np.int64)
    return np.concatenate(list(draw_chunks(n_clusters, resamples, seed)))


def cluster_counts(draws: np.ndarray, n_clusters: int) -> np.ndarray:
    """How many times each resample drew each cluster, shape (rows, n_clusters), float64.

    Row by row (each row's counts stay within one cache-sized window); the products with a (pairs or lengths) x
    clusters matrix take its transpose.
    """
    rows = draws.shape[0]
    offsets = (np.arange(rows, dtype=np.int64) * n_clusters)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=rows * n_clusters)
    return counts.reshape(rows, n_clusters).astype(np.float64)


def count_chunks(n_clusters: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """cluster_counts of successive blocks of cluster_draws: what the fitted bootstraps iterate over."""
    for draws in draw_chunks(n_clusters, resamples, seed):
        yield cluster_counts(draws, n_clusters)


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The (1 - level)/2 and (1 + level)/2 percentiles (NumPy's default linear rule) of the finite samples."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


_ROUNDING = 1e-12


def snap(low: np.ndarray | float, high: np.ndarray | float, value: np.ndarray | float):
    """Bounds within rounding (1e-12) of the wrong side of the value are moved onto it (every resample agreeing
    leaves 1 - 1e-16 above a value of 1). A real percentile interval that misses the value is left as it is."""
    low, high, value = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64), np.asarray(value)
    low = np.where((low > value) & (low - value <= _ROUNDING), value, low)
    high = np.where((high < value) & (value - high <= _ROUNDING), value, high)
    return low, high


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, not {level}")


def mean_estimate(
    values: np.ndarray,
    cluster: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Estimate:
    """The mean of per-judgment values with a percentile bootstrap interval over clusters.

    Each resample draws as many clusters as there are, with replacement; its statistic is the mean over every
    judgment of the drawn clusters (a cluster drawn twice counts twice). Vectorised: per-cluster sums and counts,
    then one matrix product per chunk of resamples.
    """
    _check_level(level)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    cluster = np.asarray(cluster).reshape(-1)
    if values.shape != cluster.shape:
        raise ValueError(f"values and cluster differ in length: {values.size} and {cluster.size}")
    if values.size and not np.all(np.isfinite(values)):
        raise ValueError("values must be finite")
    n = int(values.size)
    if n == 0:
        return Estimate(value=None, low=None, high=None, n=0, clusters=0, note=NO_JUDGMENTS)
    inverse, n_clusters = cluster_index(cluster)
    value = float(values.mean())
    if n_clusters == 1 or resamples <= 0:
        note = ONE_PROMPT if n_clusters == 1 else "no resamples asked: no interval"
        low = high = value if n_clusters == 1 else None
        return Estimate(value=value, low=low, high=high, n=n, clusters=n_clusters, note=note)
    sums = np.bincount(inverse, weights=values, minlength=n_clusters)
    sizes = np.bincount(inverse, minlength=n_clusters).astype(np.float64)
    # Gathers from per-cluster arrays small enough to stay in cache: cheaper than counting the draws.
    samples = np.concatenate(
        [sums[draws].sum(axis=1) / sizes[draws].sum(axis=1) for draws in draw_chunks(n_clusters, resamples, seed)]
    )
    low, high = percentile_interval(samples, level)
    low, high = snap(low, high, value)
    return Estimate(value=value, low=float(low), high=float(high), n=n, clusters=n_clusters)


def _scores(score: np.ndarray) -> np.ndarray:
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    if score.size and (not np.all(np.isfinite(score)) or score.min() < 0.0 or score.max() > 1.0):
        raise ValueError("scores must lie in [0, 1]: 1 candidate preferred, 0.5 tie or both bad, 0 baseline")
    return score


def win_rate(
    score: np.ndarray,
    cluster: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Estimate:
    """The candidate's win rate (wins + half the ties and both-bads) with a bootstrap interval clustered by prompt."""
    return mean_estimate(_scores(score), cluster, resamples=resamples, seed=seed, level=level)


def rate(
    flags: np.ndarray,
    cluster: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Estimate:
    """The share of judgments flagged (both bad; a red-team failure) with the same clustered bootstrap."""
    flags = np.asarray(flags).reshape(-1)
    if flags.size and not np.all((flags == 0) | (flags == 1)):
        raise ValueError("flags must be 0/1 or booleans")
    return mean_estimate(flags.astype(np.float64), cluster, resamples=resamples, seed=seed, level=level)


def win_rates_by(
    groups: np.ndarray,
    score: np.ndarray,
    cluster: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Estimate]:
    """One win rate per distinct group value (stratum, category, criteria dimension), keyed str(value), sorted.

    Each group is bootstrapped on its own prompts with the same seed.
    """
    groups = np.asarray(groups).reshape(-1)
    score = _scores(score)
    cluster = np.asarray(cluster).reshape(-1)
    if not groups.shape == score.shape == cluster.shape:
        raise ValueError("groups, score and cluster must have the same length")
    result: dict[str, Estimate] = {}
    for group in sorted(set(groups.tolist()), key=str):
        mask = groups == group
        result[str(group)] = mean_estimate(score[mask], cluster[mask], resamples=resamples, seed=seed, level=level)
    return result
