"""The length-controlled win rate: a logistic model of the vote on the length difference, read at equal length.

P(candidate preferred) = sigmoid(b0 + b1 * length_diff / s), s the population standard deviation of length_diff
(1 when it is 0). A tie or both-bad (score 0.5) is half a win and half a loss: the log-likelihood is
sum(score * log p + (1 - score) * log(1 - p)), the same maximum as fitting a logistic regression on two rows per
judgment (y = 1 and y = 0 for a tie, two 1s for a win, two 0s for a loss). The reported value is sigmoid(b0), the
win rate at equal length. Newton's method, vectorised over bootstrap resamples; the bootstrap is the one of
bootstrap.py (same clusters drawn for the same seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.special import expit

from .bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    NO_JUDGMENTS,
    ONE_PROMPT,
    Estimate,
    _check_level,
    _scores,
    cluster_counts,
    cluster_index,
    draw_chunks,
    mean_estimate,
    percentile_interval,
    snap,
)

_MAX_ITERATIONS = 100
# Newton converges quadratically: once a step is under t the error left after it is of the order of t squared, so
# stopping there saves the extra iteration a test on the next step would cost. The data's own fit is reported (and
# tested against statsmodels); a resample's only moves a percentile.
_TOLERANCE = 1e-10
_RESAMPLE_TOLERANCE = 1e-5
# A Newton step never moves a coefficient by more than this (per unit of s): keeps near-separated resamples from
# overshooting; a converging fit takes steps far smaller.
_MAX_STEP = 5.0
# Judgment cells (resamples x judgments) handled at once in the bootstrap.
_CHUNK_CELLS = 1 << 21

NO_LENGTH_VARIATION = "every judgment has the same length difference: the raw win rate is reported"
ONE_OUTCOME = "every judgment has the same outcome: the model cannot be fitted, the raw win rate is reported"
SEPARATED = (
    "the length difference separates the candidate's wins from its losses (the logistic fit does not exist): "
    "the raw win rate is reported"
)
NOT_CONVERGED = "the logistic fit did not converge: the raw win rate is reported"


@dataclass(frozen=True)
class LengthControlled(Estimate):
    """The win rate at equal length (value, with its interval) beside the raw one and the fitted model.

    intercept and slope are None when the model could not be fitted (note says why; value is then the raw rate).
    slope is per `scale` tokens of length difference.
    """

    raw: float | None = None
    intercept: float | None = None
    slope: float | None = None
    scale: float = 1.0


class _Data:
    """The judgments reduced to what the fits need: cluster x distinct-length matrices of score sums and judgment
    counts. A resample's sufficient statistics are one sparse product, and both the separation test and the Newton
    iterations run over distinct length differences, not judgments (exactly the same likelihood).
    """

    def __init__(self, x: np.ndarray, score: np.ndarray, inverse: np.ndarray, n_clusters: int):
        self.n_clusters = n_clusters
        self.x, where = np.unique(x, return_inverse=True)
        shape = (n_clusters, self.x.size)
        # Transposed once here: a resample's statistics are (x-values x clusters) @ (clusters x resamples).
        self.score_sums = sparse.csr_matrix((score, (inverse, where)), shape=shape).T.tocsr()
        self.counts = sparse.csr_matrix((np.ones(score.size), (inverse, where)), shape=shape).T.tocsr()

    def statistics(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """From cluster_counts (rows x clusters): per resample and distinct length difference, (sum of scores,
        judgments), each of shape (rows, distinct x)."""
        by_cluster = np.ascontiguousarray(counts.T)
        return (
            np.ascontiguousarray((self.score_sums @ by_cluster).T),
            np.ascontiguousarray((self.counts @ by_cluster).T),
        )


def _separated(sums: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Per row of statistics over the sorted distinct x: whether the maximum likelihood estimate does not exist.

    In one dimension with an intercept that is exactly (quasi-)separation: no row with y = 1 or none with y = 0, or a
    threshold with every y = 0 row on one side and every y = 1 row on the other (rows at the threshold itself
    allowed on both). A length difference has y = 1 rows when its score sum is positive and y = 0 rows when the
    sum is under its judgment count (sums are multiples of 0.5: exact in floating point).
    """
    win = sums > 0.0
    loss = sums < totals
    one_class = ~win.any(axis=1) | ~loss.any(axis=1)
    last = sums.shape[1] - 1
    first_win, last_win = win.argmax(axis=1), last - win[:, ::-1].argmax(axis=1)
    first_loss, last_loss = loss.argmax(axis=1), last - loss[:, ::-1].argmax(axis=1)
    # On sorted x, comparing positions is comparing length differences.
    return one_class | (last_loss <= first_win) | (last_win <= first_loss)


def _newton(
    x: np.ndarray, sums: np.ndarray, totals: np.ndarray, start: np.ndarray | None, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Logistic MLE per row of (score sums, judgment counts) over the distinct x: (coefficients (R, 2), converged).

    Log-likelihood sum(sums * log p + (totals - sums) * log(1 - p)), p = sigmoid(b0 + b1 x). Starts at `start`
    (the full-data fit, for resamples) or at the intercept-only solution.
    """
    rows = sums.shape[0]
    if start is None:
        mean = np.clip(sums.sum(axis=1) / totals.sum(axis=1), 1e-6, 1.0 - 1e-6)
        coef = np.column_stack([np.log(mean / (1.0 - mean)), np.zeros(rows)])
    else:
        coef = np.tile(start, (rows, 1))
    converged = np.zeros(rows, dtype=bool)
    powers = np.column_stack([np.ones_like(x), x, x * x])
    # Rows leave the iteration as they converge (or fail), so one slow resample does not keep the others going.
    active = np.arange(rows)
    for _ in range(_MAX_ITERATIONS):
        current = coef[active]
        p = expit(current[:, :1] + current[:, 1:] * x[None, :])
        gradient = (sums - totals * p) @ powers[:, :2]
        p *= 1.0 - p
        p *= totals
        h00, h01, h11 = (p @ powers).T
        g0, g1 = gradient.T
        det = h00 * h11 - h01 * h01
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.column_stack([(h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det])
        failed = ~np.isfinite(step).all(axis=1)
        step[failed] = 0.0
        biggest = np.abs(step).max(axis=1, keepdims=True)
        step *= np.minimum(1.0, _MAX_STEP / np.maximum(biggest, 1e-300))
        current += step
        coef[active] = current
        done = ~failed & (np.abs(step).max(axis=1) < tolerance * (1.0 + np.abs(current).max(axis=1)))
        converged[active[done]] = True
        going = ~(done | failed)
        if not going.any():
            break
        if not going.all():
            active, sums, totals = active[going], sums[going], totals[going]
    return coef, converged


def _fit_values(
    data: _Data, draws: np.ndarray, start: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of drawn clusters: (sigmoid(b0), or the raw rate where no fit exists; coefficients or NaN; code).

    Codes: 0 fitted, 1 separated or one outcome, 2 not converged.
    """
    sums, totals = data.statistics(cluster_counts(draws, data.n_clusters))
    raw = sums.sum(axis=1) / totals.sum(axis=1)
    separated = _separated(sums, totals)
    values = raw.copy()
    coefs = np.full((draws.shape[0], 2), np.nan)
    codes = np.where(separated, 1, 0)
    fit = np.flatnonzero(~separated)
    if fit.size:
        if fit.size < draws.shape[0]:
            sums, totals = sums[fit], totals[fit]
        coef, converged = _newton(data.x, sums, totals, start, _TOLERANCE if start is None else _RESAMPLE_TOLERANCE)
        good = fit[converged]
        values[good] = expit(coef[converged, 0])
        coefs[good] = coef[converged]
        codes[fit[~converged]] = 2
    return values, coefs, codes


def length_controlled_win_rate(
    score: np.ndarray,
    length_diff: np.ndarray,
    cluster: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> LengthControlled:
    """The win rate at equal length, with a bootstrap interval clustered by prompt; never raises on degenerate data.

    Where the model cannot be fitted on the data (no length variation, one outcome, separation, no convergence)
    the value is the raw win rate, intercept and slope are None, and note says why. A resample that cannot be
    fitted contributes its raw rate to the interval (counted in the note).
    """
    _check_level(level)
    score = _scores(score)
    x_tokens = np.asarray(length_diff, dtype=np.float64).reshape(-1)
    cluster = np.asarray(cluster).reshape(-1)
    if not score.shape == x_tokens.shape == cluster.shape:
        raise ValueError("score, length_diff and cluster must have the same length")
    if x_tokens.size and not np.all(np.isfinite(x_tokens)):
        raise ValueError("length differences must be finite")
    n = int(score.size)
    if n == 0:
        return LengthControlled(value=None, low=None, high=None, n=0, clusters=0, note=NO_JUDGMENTS)
    inverse, n_clusters = cluster_index(cluster)
    raw = float(score.mean())
    scale = float(x_tokens.std())
    if not scale > 0.0:
        scale = 1.0
    x = x_tokens / scale
    no_variation = bool(np.all(x_tokens == x_tokens[0]))
    if no_variation:
        values, coefs, codes = np.array([raw]), np.full((1, 2), np.nan), np.array([1])
    else:
        data = _Data(x, score, inverse, n_clusters)
        values, coefs, codes = _fit_values(data, np.arange(n_clusters)[None, :])
    value = float(values[0])
    fitted = codes[0] == 0
    notes = []
    if no_variation:
        notes.append(NO_LENGTH_VARIATION)
    elif codes[0] == 1:
        notes.append(ONE_OUTCOME if np.all(score == score[0]) and score[0] != 0.5 else SEPARATED)
    elif codes[0] == 2:
        notes.append(NOT_CONVERGED)
    common = {
        "n": n,
        "clusters": n_clusters,
        "raw": raw,
        "intercept": float(coefs[0, 0]) if fitted else None,
        "slope": float(coefs[0, 1]) if fitted else None,
        "scale": scale,
    }
    if n_clusters == 1 or resamples <= 0 or not fitted:
        if n_clusters == 1:
            notes.append(ONE_PROMPT)
            low = high = value
        elif not fitted:
            # The same fallback in every resample: the raw rate's interval.
            raw_estimate = mean_estimate(score, cluster, resamples=resamples, seed=seed, level=level)
            low, high = raw_estimate.low, raw_estimate.high
        else:
            notes.append("no resamples asked: no interval")
            low = high = None
        return LengthControlled(value=value, low=low, high=high, note="; ".join(notes) or None, **common)
    samples = []
    fallbacks = 0
    rows_per_chunk = max(1, _CHUNK_CELLS // data.x.size)
    for draws in draw_chunks(n_clusters, resamples, seed):
        for first in range(0, draws.shape[0], rows_per_chunk):
            block = draws[first : first + rows_per_chunk]
            chunk_values, _, chunk_codes = _fit_values(data, block, start=coefs[0])
            samples.append(chunk_values)
            fallbacks += int(np.count_nonzero(chunk_codes))
    low, high = snap(*percentile_interval(np.concatenate(samples), level), value)
    if fallbacks:
        notes.append(f"{fallbacks} of {resamples} resamples could not be fitted and count with their raw win rate")
    return LengthControlled(value=value, low=float(low), high=float(high), note="; ".join(notes) or None, **common)
