"""Metrics benchmark: every batch metric of rewards.metrics on one batch of 1,000,000 judgments from 200 annotators.

    .venv/bin/python bench/metrics.py                           # 200,000 items x 5 judgments, 200 annotators
    .venv/bin/python bench/metrics.py --items 50000 --overlap 3 --repeat 5

Times each metric on its own (best of --repeat, each on a fresh Judgments so no cached grouping is
reused), then the whole `batch_report` + `flags_for` against a baseline batch of the same size, then
Dawid-Skene (the reliability-weighted aggregation, not a metric: reported apart). Pure NumPy: no
database, no Django. The figures go in bench/README.md, section "Metrics".
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

from rewards.metrics import (
    Judgments,
    annotator_stats,
    batch_report,
    cohen_kappa_mean,
    dawid_skene,
    flags_for,
    fleiss_kappa,
    gold_accuracy,
    krippendorff_alpha,
    pairwise_cohen_kappa,
    percent_agreement,
    pool_baseline,
)


def generate(*, items: int, overlap: int, annotators: int, seed: int, shuffle: bool = False) -> Judgments:
    """A batch where every item gets `overlap` distinct annotators; accuracies 0.6 to 0.97."""
    rng = np.random.default_rng(seed)
    # overlap distinct annotators per item: sorted draws with replacement from a shorter range, plus 0..k-1.
    draws = np.sort(rng.integers(0, annotators - overlap + 1, size=(items, overlap)), axis=1) + np.arange(overlap)
    who = rng.permuted(draws, axis=1).ravel()
    item = np.repeat(np.arange(items), overlap)
    truth = rng.choice(4, size=items, p=[0.42, 0.42, 0.1, 0.06])
    accuracy = rng.uniform(0.6, 0.97, size=annotators)
    right = rng.random(item.size) < accuracy[who]
    wrong = (truth[item] + rng.integers(1, 4, size=item.size)) % 4
    label = np.where(right, truth[item], wrong)
    gold = np.where((rng.random(items) < 0.07) & (truth < 3), truth, -1)
    order = rng.permutation(item.size) if shuffle else np.arange(item.size)
    return Judgments(
        item=item[order],
        annotator=who[order],
        label=label[order],
        n_items=items,
        n_annotators=annotators,
        seconds=rng.lognormal(np.log(20.0), 0.6, size=item.size),
        shown_left=rng.random(item.size) < 0.5,
        gold=gold,
        longer=rng.integers(-1, 2, size=items),
    )


def fresh(j: Judgments) -> Judgments:
    # A new object: cached item groupings of an earlier run must not flatter the next.
    return Judgments(
        item=j.item,
        annotator=j.annotator,
        label=j.label,
        n_items=j.n_items,
        n_annotators=j.n_annotators,
        seconds=j.seconds,
        shown_left=j.shown_left,
        gold=j.gold,
        longer=j.longer,
    )


def best_of(repeat: int, make: Callable[[], Judgments], run: Callable[[Judgments], object]) -> float:
    times = []
    for _ in range(repeat):
        j = make()
        start = time.perf_counter()
        run(j)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--overlap", type=int, default=5)
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--shuffle",
        action="store_true",
        help="judgments in random order (default: grouped by item, as selectors read them)",
    )
    args = parser.parse_args()

    start = time.perf_counter()
    shape = {"items": args.items, "overlap": args.overlap, "annotators": args.annotators, "shuffle": args.shuffle}
    current = generate(**shape, seed=args.seed)
    baseline = generate(**shape, seed=args.seed + 1)
    generated = time.perf_counter() - start
    print(
        f"{current.size:,} judgments, {args.items:,} items x {args.overlap}, {args.annotators} annotators"
        f"{', random order' if args.shuffle else ', grouped by item'} (generated in {generated:.1f} s);"
        f" best of {args.repeat}"
    )
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, {os.cpu_count()} CPUs\n")

    rows = [
        ("Cohen's kappa, every pair + weighted mean", lambda j: cohen_kappa_mean(pairwise_cohen_kappa(j))),
        ("Fleiss' kappa (first k per item)", fleiss_kappa),
        ("Krippendorff's alpha (nominal)", krippendorff_alpha),
        ("percent agreement", percent_agreement),
        ("gold accuracy", gold_accuracy),
        ("per annotator: consensus kappa, gold, bias, speed", annotator_stats),
    ]
    timings = [(name, best_of(args.repeat, lambda: fresh(current), run)) for name, run in rows]
    # The snapshot service's call: every metric in one report (they share the item grouping), drift
    # against the baseline and the flags. With the baseline's per-batch stats stored (pool_baseline),
    # or recomputed from 1,000,000 baseline judgments.
    stored = pool_baseline([annotator_stats(baseline)])
    report_stored = best_of(
        args.repeat,
        lambda: fresh(current),
        lambda j: flags_for(batch_report(j, baseline=baseline, baseline_stats=stored)),
    )
    report_recomputed = best_of(
        args.repeat, lambda: fresh(current), lambda j: flags_for(batch_report(j, baseline=fresh(baseline)))
    )
    model = None

    def fit(j: Judgments) -> None:
        nonlocal model
        model = dawid_skene(j)

    ds_time = best_of(args.repeat, lambda: fresh(current), fit)

    width = 52
    print(f"{'metric':<{width}} {'seconds':>8}")
    for name, seconds in timings:
        print(f"{name:<{width}} {seconds:>8.3f}")
    print(f"{'sum of the above, each on its own':<{width}} {sum(t for _, t in timings):>8.3f}")
    print(f"{'batch_report + flags_for, baseline stats stored':<{width}} {report_stored:>8.3f}")
    print(f"{'batch_report + flags_for, baseline recomputed (1M)':<{width}} {report_recomputed:>8.3f}")
    print(
        f"{'Dawid-Skene EM (aggregation, not a metric)':<{width}} {ds_time:>8.3f}"
        f"  ({model.iterations} iterations, converged={model.converged})"
    )


if __name__ == "__main__":
    main()
