"""Bradley-Terry ratings of checkpoints from every evaluation judgment, with a bootstrap clustered by prompt.

P(i beats j) = sigmoid(theta_i - theta_j), theta on the natural-log scale with the anchor (the base model) at 0;
a tie or both-bad is half a win each way. The maximum-likelihood fit runs on the aggregated pair counts (one row
per pair of players, whatever the number of judgments) by Newton's method with a backtracking line search.

The estimate exists only when every player is compared, through some chain, with the anchor, and no group of
players won (or lost) every comparison with the rest. Players outside the anchor's component get NaN; when the
component is not strongly connected every compared pair gets one virtual tie (noted), which keeps every rating
finite: a player who won everything still ranks first, at a finite distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit

from .bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    _check_level,
    as_float,
    cluster_index,
    count_chunks,
    snap,
)

ELO_SCALE = 400.0 / math.log(10.0)
_MAX_ITERATIONS = 200
_TOLERANCE = 1e-12

SMOOTHED = (
    "some players won or lost every comparison with the others, so the maximum-likelihood ratings are infinite: "
    "one virtual tie was added to every compared pair"
)


def to_elo(theta: np.ndarray | float, scale: float = ELO_SCALE) -> np.ndarray:
    """Log-strengths on the Elo display scale (400 points = 10:1 odds), the anchor staying at 0; NaN kept."""
    return np.asarray(theta, dtype=np.float64) * scale


def win_probability(theta_i: float, theta_j: float) -> float:
    """P(i beats j) under the model."""
    return float(expit(theta_i - theta_j))


@dataclass(frozen=True)
class Ratings:
    """Log-strengths (natural log, anchor 0) of every player; NaN where a player is not rated.

    low and high are bootstrap percentile bounds (None from bradley_terry, NaN for players without a rating).
    comparisons counts the judgments each player took part in.
    """

    theta: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None
    comparisons: np.ndarray
    anchor: int
    note: str | None = None
    resamples_used: int = 0

    @property
    def rated(self) -> np.ndarray:
        return np.isfinite(self.theta)

    def elo(self, scale: float = ELO_SCALE) -> np.ndarray:
        return to_elo(self.theta, scale)

    def rows(self, labels: list[str] | None = None, scale: float = ELO_SCALE) -> list[dict]:
        """One JSON-safe dict per player (floats or None, never NaN), in player order."""
        result = []
        for index in range(self.theta.size):
            low = None if self.low is None else as_float(self.low[index])
            high = None if self.high is None else as_float(self.high[index])
            theta = as_float(self.theta[index])
            result.append(
                {
                    "index": index,
                    "label": labels[index] if labels is not None else None,
                    "theta": theta,
                    "low": low,
                    "high": high,
                    "elo": None if theta is None else theta * scale,
                    "elo_low": None if low is None else low * scale,
                    "elo_high": None if high is None else high * scale,
                    "comparisons": int(self.comparisons[index]),
                    "rated": theta is not None,
                    "anchor": index == self.anchor,
                }
            )
        return result


def _validate(winner, loser, tie, n_players: int, anchor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    winner = np.asarray(winner, dtype=np.int64).reshape(-1)
    loser = np.asarray(loser, dtype=np.int64).reshape(-1)
    tie = np.asarray(tie, dtype=bool).reshape(-1)
    if not winner.shape == loser.shape == tie.shape:
        raise ValueError("winner, loser and tie must have the same length")
    if not 0 <= anchor < n_players:
        raise ValueError(f"anchor {anchor} is not a player of {n_players}")
    if winner.size:
        if min(winner.min(), loser.min()) < 0 or max(winner.max(), loser.max()) >= n_players:
            raise ValueError(f"player indices must lie in 0..{n_players - 1}")
        if np.any(winner == loser):
            raise ValueError("a judgment compares a player with itself")
    return winner, loser, tie


def _pair_rows(winner: np.ndarray, loser: np.ndarray, tie: np.ndarray, n_players: int):
    """Per judgment: the pair key i * n_players + j with i < j, and i's share of the win (1, 0.5 or 0)."""
    first = np.minimum(winner, loser)
    second = np.maximum(winner, loser)
    share = np.where(tie, 0.5, (winner == first).astype(np.float64))
    return first * n_players + second, share


def _fit(
    first: np.ndarray,
    second: np.ndarray,
    wins: np.ndarray,
    total: np.ndarray,
    n_players: int,
    anchor: int,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, bool, bool]:
    """MLE on aggregated pairs (first < second, wins of first, comparisons): (theta with NaN, smoothed, converged)."""
    keep = total > 0
    first, second, wins, total = first[keep], second[keep], wins[keep], total[keep]
    theta = np.full(n_players, np.nan)
    theta[anchor] = 0.0
    if first.size == 0:
        return theta, False, True
    ones = np.ones(first.size)
    undirected = sparse.coo_matrix((ones, (first, second)), shape=(n_players, n_players))
    _, component = connected_components(undirected, directed=False)
    rated = component == component[anchor]
    inside = rated[first]  # a pair is inside the anchor's component when its first player is
    first, second, wins, total = first[inside], second[inside], wins[inside], total[inside]
    if first.size == 0:
        return theta, False, True
    # i -> j when i took at least part of a win over j: the MLE exists iff this graph is strongly connected.
    beats_forward = wins > 0
    beats_back = wins < total
    directed = sparse.coo_matrix(
        (
            np.ones(int(beats_forward.sum() + beats_back.sum())),
            (
                np.concatenate([first[beats_forward], second[beats_back]]),
                np.concatenate([second[beats_forward], first[beats_back]]),
            ),
        ),
        shape=(n_players, n_players),
    )
    _, strong = connected_components(directed, directed=True, connection="strong")
    smoothed = np.unique(strong[rated]).size > 1
    if smoothed:
        wins = wins + 0.5
        total = total + 1.0
    free = np.flatnonzero(rated)
    free = free[free != anchor]
    position = np.full(n_players, -1)
    position[free] = np.arange(free.size)
    current = np.zeros(n_players)
    if start is not None:
        current[free] = np.nan_to_num(start[free])
    losses = total - wins

    def log_likelihood(values: np.ndarray) -> float:
        diff = values[first] - values[second]
        return float(wins @ log_expit(diff) + losses @ log_expit(-diff))

    size = free.size
    converged = False
    previous = log_likelihood(current)
    pos_first = position[first]
    pos_second = position[second]
    for _ in range(_MAX_ITERATIONS):
        diff = current[first] - current[second]
        p = expit(diff)
        residual = wins - total * p
        variance = total * p * (1.0 - p)
        gradient = np.bincount(first, residual, n_players) - np.bincount(second, residual, n_players)
        # The negative Hessian is the weighted graph Laplacian; rows and columns of the anchor are dropped.
        hessian = np.zeros((size, size))
        np.add.at(hessian, (pos_first[pos_first >= 0], pos_first[pos_first >= 0]), variance[pos_first >= 0])
        np.add.at(hessian, (pos_second[pos_second >= 0], pos_second[pos_second >= 0]), variance[pos_second >= 0])
        both = (pos_first >= 0) & (pos_second >= 0)
        np.add.at(hessian, (pos_first[both], pos_second[both]), -variance[both])
        np.add.at(hessian, (pos_second[both], pos_first[both]), -variance[both])
        try:
            step = np.linalg.solve(hessian, gradient[free])
        except np.linalg.LinAlgError:
            break
        t = 1.0
        for _ in range(60):
            candidate = current.copy()
            candidate[free] += t * step
            value = log_likelihood(candidate)
            if value >= previous - 1e-12 * abs(previous):
                break
            t *= 0.5
        current = candidate
        previous = value
        if np.max(np.abs(t * step)) < _TOLERANCE * (1.0 + np.max(np.abs(current))):
            converged = True
            break
    theta[free] = current[free]
    return theta, bool(smoothed), converged


def _fit_batch(
    first: np.ndarray, second: np.ndarray, wins: np.ndarray, total: np.ndarray, full: Ratings, anchor: int
) -> tuple[np.ndarray, np.ndarray]:
    """Newton's method on many resamples at once, from the full-data estimate: (theta (R, players), converged (R,)).

    For resamples whose comparison graph is the full data's (strongly connected): the log-likelihood is concave with
    a unique maximum close to the start, so plain Newton steps converge; a row that does not is reported and
    refitted by _fit.
    """
    n_players = full.theta.size
    free = np.flatnonzero(full.rated)
    free = free[free != anchor]
    rows = wins.shape[0]
    theta = np.tile(np.nan_to_num(full.theta), (rows, 1))
    theta[:, ~full.rated] = np.nan
    # Incidence of the pairs on the free players: +1 for the first player, -1 for the second.
    incidence = np.zeros((first.size, n_players))
    incidence[np.arange(first.size), first] = 1.0
    incidence[np.arange(first.size), second] = -1.0
    incidence = incidence[:, free]
    converged = np.zeros(rows, dtype=bool)
    values = theta[:, free]
    for _ in range(_MAX_ITERATIONS):
        full_theta = np.zeros((rows, n_players))
        full_theta[:, free] = values
        p = expit(full_theta[:, first] - full_theta[:, second])
        gradient = (wins - total * p) @ incidence
        variance = total * p * (1.0 - p)
        hessian = np.matmul(incidence.T[None, :, :] * variance[:, None, :], incidence)
        try:
            step = np.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            return theta, converged
        values = values + step
        converged = np.abs(step).max(axis=1) < _TOLERANCE * (1.0 + np.abs(values).max(axis=1))
        if converged.all():
            break
    ok = np.isfinite(values).all(axis=1)
    converged &= ok
    theta[:, free] = values
    return theta, converged


def _aggregate(keys: np.ndarray, share: np.ndarray, n_players: int):
    unique, inverse = np.unique(keys, return_inverse=True)
    wins = np.bincount(inverse, share, unique.size)
    total = np.bincount(inverse, minlength=unique.size).astype(np.float64)
    return unique // n_players, unique % n_players, wins, total


def _comparisons(winner: np.ndarray, loser: np.ndarray, n_players: int) -> np.ndarray:
    return np.bincount(winner, minlength=n_players) + np.bincount(loser, minlength=n_players)


def _note(theta: np.ndarray, comparisons: np.ndarray, anchor: int, smoothed: bool, converged: bool) -> list[str]:
    notes = []
    unrated = np.flatnonzero(~np.isfinite(theta))
    if unrated.size:
        listed = ", ".join(str(i) for i in unrated[:20]) + (" …" if unrated.size > 20 else "")
        notes.append(f"not rated (no chain of comparisons to the anchor {anchor}): players {listed}")
    if smoothed:
        notes.append(SMOOTHED)
    if not converged:
        notes.append("the fit did not reach its tolerance")
    return notes


def bradley_terry(winner, loser, tie, n_players: int, *, anchor: int = 0) -> Ratings:
    """Maximum-likelihood Bradley-Terry log-strengths, anchor at 0 (low and high None)."""
    winner, loser, tie = _validate(winner, loser, tie, n_players, anchor)
    comparisons = _comparisons(winner, loser, n_players)
    keys, share = _pair_rows(winner, loser, tie, n_players)
    first, second, wins, total = _aggregate(keys, share, n_players)
    theta, smoothed, converged = _fit(first, second, wins, total, n_players, anchor)
    notes = _note(theta, comparisons, anchor, smoothed, converged)
    return Ratings(
        theta=theta, low=None, high=None, comparisons=comparisons, anchor=anchor, note="; ".join(notes) or None
    )


def bradley_terry_bootstrap(
    winner,
    loser,
    tie,
    cluster,
    n_players: int,
    *,
    anchor: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Ratings:
    """bradley_terry plus percentile intervals from a bootstrap over clusters (a prompt across every batch).

    The clusters drawn are those of bootstrap.cluster_draws for the same seed. A player not rated in a resample
    (its prompts not drawn) is left out of that resample's percentiles; resamples whose fit needed the virtual
    ties are counted in the note.
    """
    _check_level(level)
    winner, loser, tie = _validate(winner, loser, tie, n_players, anchor)
    cluster = np.asarray(cluster).reshape(-1)
    if cluster.shape != winner.shape:
        raise ValueError("cluster must have one entry per judgment")
    full = bradley_terry(winner, loser, tie, n_players, anchor=anchor)
    if winner.size == 0 or resamples <= 0:
        return Ratings(
            theta=full.theta,
            low=np.full(n_players, np.nan),
            high=np.full(n_players, np.nan),
            comparisons=full.comparisons,
            anchor=anchor,
            note=full.note,
        )
    inverse, n_clusters = cluster_index(cluster)
    keys, share = _pair_rows(winner, loser, tie, n_players)
    pair_keys, pair_index = np.unique(keys, return_inverse=True)
    first = pair_keys // n_players
    second = pair_keys % n_players
    # cluster x pair matrices of first-player wins and comparisons: a resample's pair counts are one product.
    shape = (n_clusters, pair_keys.size)
    wins_by_cluster = sparse.csr_matrix((share, (inverse, pair_index)), shape=shape)
    total_by_cluster = sparse.csr_matrix((np.ones(inverse.size), (inverse, pair_index)), shape=shape)
    wins_by_cluster = wins_by_cluster.T.tocsr()
    total_by_cluster = total_by_cluster.T.tocsr()
    full_wins = np.asarray(wins_by_cluster.sum(axis=1)).ravel()
    full_total = np.asarray(total_by_cluster.sum(axis=1)).ravel()
    # Pairs between rated players: the only ones a resample's fit can use.
    inside = full.rated[first] & full.rated[second]
    smoothed_full = bool(full.note and SMOOTHED in full.note)
    samples = []
    smoothed_count = 0
    for counts in count_chunks(n_clusters, resamples, seed):
        by_cluster = np.ascontiguousarray(counts.T)
        wins = (wins_by_cluster @ by_cluster).T
        total = (total_by_cluster @ by_cluster).T
        # A resample that kept every direction of win the full data has keeps its strongly connected graph: the
        # plain fit exists and a batched Newton from the full estimate finds it. The rest take the general path.
        regular = np.zeros(counts.shape[0], dtype=bool)
        if not smoothed_full and inside.any():
            regular = np.all(
                ((wins[:, inside] > 0) == (full_wins[inside] > 0))
                & ((total[:, inside] - wins[:, inside] > 0) == (full_total[inside] - full_wins[inside] > 0)),
                axis=1,
            )
        theta = np.full((counts.shape[0], n_players), np.nan)
        if regular.any():
            fitted, converged = _fit_batch(
                first[inside], second[inside], wins[regular][:, inside], total[regular][:, inside], full, anchor
            )
            rows = np.flatnonzero(regular)
            theta[rows[converged]] = fitted[converged]
            regular[rows[~converged]] = False
        for row in np.flatnonzero(~regular):
            theta[row], smoothed, _ = _fit(first, second, wins[row], total[row], n_players, anchor, start=full.theta)
            smoothed_count += smoothed
        samples.append(theta)
    stacked = np.vstack(samples)
    tail = 100.0 * (1.0 - level) / 2.0
    low = np.full(n_players, np.nan)
    high = np.full(n_players, np.nan)
    for player in np.flatnonzero(full.rated):
        values = stacked[:, player]
        values = values[np.isfinite(values)]
        if values.size:
            low[player], high[player] = np.percentile(values, [tail, 100.0 - tail])
    low, high = snap(low, high, full.theta)
    notes = [full.note] if full.note else []
    missing = int(np.count_nonzero(~np.isfinite(stacked[:, full.rated])))
    if missing:
        notes.append(f"{missing} player-resamples had no chain to the anchor and were left out of the intervals")
    if smoothed_count and not (full.note and SMOOTHED in full.note):
        notes.append(f"{smoothed_count} of {resamples} resamples needed the virtual ties")
    return Ratings(
        theta=full.theta,
        low=low,
        high=high,
        comparisons=full.comparisons,
        anchor=anchor,
        note="; ".join(notes) or None,
        resamples_used=resamples,
    )
