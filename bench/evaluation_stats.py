"""Evaluation statistics benchmark: win rates of every evaluation batch and Bradley-Terry ratings of 50 models.

    .venv/bin/python bench/evaluation_stats.py                    # 50 models, 200,000 judgments, 200 resamples
    .venv/bin/python bench/evaluation_stats.py --resamples 1000 --repeat 1
    .venv/bin/python bench/evaluation_stats.py --statsmodels      # also statsmodels Logit on 400,000 rows (slow)

Synthetic data, no database, no Django: what the Checkpoints page's selector spends once it has read the arrays.
A base model (the anchor) and 49 checkpoints; 58 evaluation batches: each checkpoint against the one before (49)
and every fifth against the base (9); 2,000 prompts in 4 strata, each batch judging about 1,720 of them twice;
votes drawn from a Bradley-Terry model plus a prompt effect and a length preference, 13 % scored 0.5 (10 % ties,
3 % both bad). Each row is the best of --repeat runs. References timed on the same data in the same run:
scikit-learn's LogisticRegression on the aggregated pair counts with sample weights (the Chatbot Arena recipe),
once and as a bootstrap (--reference-resamples refits timed, extrapolated), and with --statsmodels, statsmodels'
Logit on two rows per judgment (the reference the tests use). Figures: bench/README.md, "Evaluation statistics".
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation.metrics import (
    bradley_terry,
    bradley_terry_bootstrap,
    length_controlled_win_rate,
    rate,
    win_rate,
    win_rates_by,
)


def generate(*, models: int, judgments: int, prompts: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Quality rises with diminishing steps, then slips a little: the loop's usual shape.
    steps = np.arange(models)
    theta = 0.9 * np.log1p(steps / 6.0) - 0.004 * np.maximum(steps - 35, 0) ** 2
    pairs = [(k, k - 1) for k in range(1, models)] + [(k, 0) for k in range(5, models, 5)][:10]
    per_batch = judgments // len(pairs)
    stratum_of_prompt = rng.choice(4, size=prompts, p=[0.55, 0.2, 0.15, 0.1])
    prompt_effect = rng.normal(0, 0.4, prompts)
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("batch", "cand", "base", "prompt", "score", "diff")}
    for number, (cand, base) in enumerate(pairs):
        n = per_batch + (1 if number < judgments - per_batch * len(pairs) else 0)
        chosen = rng.choice(prompts, size=(n + 1) // 2, replace=False) if (n + 1) // 2 <= prompts else None
        prompt = np.repeat(chosen, 2)[:n]
        diff = np.round(rng.normal(8.0 * (cand - base), 90.0, chosen.size))[np.repeat(np.arange(chosen.size), 2)[:n]]
        logit = theta[cand] - theta[base] + prompt_effect[prompt] + diff / 400.0
        outcome = rng.random(n)
        score = np.where(outcome < 0.13, 0.5, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float))
        for key, value in (
            ("batch", np.full(n, number)),
            ("cand", np.full(n, cand)),
            ("base", np.full(n, base)),
            ("prompt", prompt),
            ("score", score),
            ("diff", diff),
        ):
            columns[key].append(value)
    data = {k: np.concatenate(v) for k, v in columns.items()}
    data["both_bad"] = rng.random(data["score"].size) < np.where(data["score"] == 0.5, 0.03 / 0.13, 0.0)
    data["stratum"] = stratum_of_prompt[data["prompt"]]
    data["theta"] = theta
    data["batches"] = np.array(len(pairs))
    return data


def best_of(repeat: int, function: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def per_batch(data: dict, resamples: int, what: str):
    def run():
        results = []
        batches = data["batch"]
        order = np.argsort(batches, kind="stable")
        bounds = np.searchsorted(batches[order], np.arange(int(data["batches"]) + 1))
        for b in range(int(data["batches"])):
            rows = order[bounds[b] : bounds[b + 1]]
            score, prompt = data["score"][rows], data["prompt"][rows]
            if what == "win_rate":
                results.append(win_rate(score, prompt, resamples=resamples, seed=b))
            elif what == "both_bad":
                results.append(rate(data["both_bad"][rows], prompt, resamples=resamples, seed=b))
            elif what == "strata":
                results.append(win_rates_by(data["stratum"][rows], score, prompt, resamples=resamples, seed=b))
            else:
                results.append(
                    length_controlled_win_rate(score, data["diff"][rows], prompt, resamples=resamples, seed=b)
                )
        return results

    return run


def players_of(data: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    score = data["score"]
    winner = np.where(score == 0.0, data["base"], data["cand"])
    loser = np.where(score == 0.0, data["cand"], data["base"])
    return winner, loser, score == 0.5


def sklearn_aggregated(winner, loser, tie, models: int) -> np.ndarray:
    """Chatbot Arena's compute_mle_elo recipe: one row per (pair, outcome) with its count as sample weight."""
    from sklearn.linear_model import LogisticRegression

    first, second = np.minimum(winner, loser), np.maximum(winner, loser)
    share = np.where(tie, 0.5, (winner == first).astype(float))
    key = first * models + second
    unique, inverse = np.unique(key, return_inverse=True)
    wins = np.bincount(inverse, share)
    losses = np.bincount(inverse) - wins
    x = np.zeros((2 * unique.size, models))
    rows = np.arange(unique.size)
    for half in (0, 1):
        x[half * unique.size + rows, unique // models] = 1.0
        x[half * unique.size + rows, unique % models] = -1.0
    y = np.r_[np.ones(unique.size), np.zeros(unique.size)]
    model = LogisticRegression(C=np.inf, fit_intercept=False, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    model.fit(x[:, 1:], y, sample_weight=np.r_[wins, losses])
    return np.r_[0.0, model.coef_[0]]


def statsmodels_expanded(winner, loser, tie, models: int) -> np.ndarray:
    """Two rows per judgment, +1 for the winner and -1 for the loser, the anchor column dropped (as in the tests)."""
    import statsmodels.api as sm

    n = winner.size
    x = np.zeros((2 * n, models))
    rows = np.arange(n)
    mirror = np.where(rows % 2 == 0, 1.0, -1.0)
    for half in (0, 1):
        x[half * n + rows, winner] = mirror
        x[half * n + rows, loser] = -mirror
    y = np.r_[np.ones(n), np.where(tie, 0.0, 1.0)]
    y = np.where(np.r_[mirror, mirror] < 0, 1.0 - y, y)
    return np.r_[0.0, sm.Logit(y, x[:, 1:]).fit(method="newton", tol=1e-12, maxiter=100, disp=0).params]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--judgments", type=int, default=200_000)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reference-resamples", type=int, default=10, help="sklearn bootstrap refits timed")
    parser.add_argument("--max-load", type=float, default=None, help="wait (up to 10 min) for a lower load average")
    parser.add_argument(
        "--statsmodels", action="store_true", help="also time statsmodels Logit on two rows per judgment (a minute)"
    )
    args = parser.parse_args()

    if args.max_load is not None:
        deadline = time.monotonic() + 600
        while os.getloadavg()[0] > args.max_load and time.monotonic() < deadline:
            time.sleep(5)
    data = generate(models=args.models, judgments=args.judgments, prompts=args.prompts, seed=args.seed)
    n, batches = data["score"].size, int(data["batches"])
    print(
        f"{args.models} models, {batches} evaluation batches, {n:,} judgments, {args.prompts:,} prompts, "
        f"{args.resamples} resamples, best of {args.repeat}"
    )
    print(
        f"Python {platform.python_version()}, NumPy {np.__version__}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    winner, loser, tie = players_of(data)
    rows = []
    for label, what in (
        ("win rate, every batch", "win_rate"),
        ("both-bad rate, every batch", "both_bad"),
        ("win rate per stratum (4), every batch", "strata"),
        ("length-controlled win rate, every batch", "lc"),
    ):
        seconds, _ = best_of(args.repeat, per_batch(data, args.resamples, what))
        rows.append((label, seconds))
    fit_seconds, ratings = best_of(args.repeat, lambda: bradley_terry(winner, loser, tie, args.models, anchor=0))
    rows.append(("Bradley-Terry fit (one)", fit_seconds))
    boot_seconds, boot = best_of(
        args.repeat,
        lambda: bradley_terry_bootstrap(
            winner, loser, tie, data["prompt"], args.models, anchor=0, resamples=args.resamples, seed=0
        ),
    )
    rows.append((f"Bradley-Terry fit + {args.resamples} clustered bootstrap refits", boot_seconds))
    width = max(len(label) for label, _ in rows) + 2
    for label, seconds in rows:
        print(f"  {label:<{width}} {seconds:8.3f} s")
    total = sum(seconds for label, seconds in rows if label != "Bradley-Terry fit (one)")
    print(f"  {'total (every row but the single fit)':<{width}} {total:8.3f} s   target < 5 s")

    print("references on the same judgments:")
    sk_seconds, sk_theta = best_of(args.repeat, lambda: sklearn_aggregated(winner, loser, tie, args.models))
    print(
        f"  sklearn LogisticRegression, aggregated pairs + sample_weight: {sk_seconds:.3f} s "
        f"(ours {fit_seconds:.3f} s, ratio {sk_seconds / fit_seconds:.1f}x); "
        f"max |theta diff| {np.max(np.abs(sk_theta - ratings.theta)):.1e}"
    )
    if args.statsmodels:
        sm_seconds, sm_theta = best_of(1, lambda: statsmodels_expanded(winner, loser, tie, args.models))
        print(
            f"  statsmodels Logit, two rows per judgment ({2 * n:,} rows): {sm_seconds:.3f} s "
            f"(ratio {sm_seconds / fit_seconds:.0f}x); max |theta diff| {np.max(np.abs(sm_theta - ratings.theta)):.1e}"
        )
    # The reference bootstrap: draw prompts as ours does, gather their judgments, refit with sklearn.
    prompt_ids, inverse = np.unique(data["prompt"], return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(prompt_ids.size + 1))
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(args.reference_resamples):
        drawn = rng.integers(0, prompt_ids.size, size=prompt_ids.size)
        picked = np.concatenate([order[bounds[d] : bounds[d + 1]] for d in drawn])
        sklearn_aggregated(winner[picked], loser[picked], tie[picked], args.models)
    per_refit = (time.perf_counter() - start) / max(args.reference_resamples, 1)
    print(
        f"  sklearn bootstrap, {args.reference_resamples} refits timed: {per_refit:.3f} s each, "
        f"{per_refit * args.resamples:.1f} s for {args.resamples} (ours {boot_seconds:.3f} s, "
        f"ratio {per_refit * args.resamples / boot_seconds:.0f}x)"
    )
    spread = np.nanmax(boot.high - boot.low)
    print(
        f"ratings: rank correlation with the simulated strengths {np.corrcoef(np.argsort(np.argsort(ratings.theta)), np.argsort(np.argsort(data['theta'])))[0, 1]:.3f}; "
        f"widest 95 % interval {spread:.3f} (log scale); note: {boot.note}"
    )


if __name__ == "__main__":
    main()
