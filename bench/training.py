"""Training throughput: our reward-model and DPO runs against a bare TRL script on the same data and settings.

Each measurement is a fresh child process (`OMP_NUM_THREADS` fixed) that either calls our function
(`trainer.ml.reward_model.train_reward_model` / `trainer.ml.dpo.train_dpo`, with a no-op progress) or runs the
few lines a TRL user would write (`datasets.load_dataset("json")` + `RewardTrainer` / `DPOTrainer`). Both sides use
the same tiny Llama (built once, by `trainer.ml.tiny.build_tiny_model`), the same train JSONL, batch size, max_length,
learning rate, epochs, seed, fp32 on CPU and no activation checkpointing; the bare script keeps TRL's other defaults
(logging every 10 steps, no callbacks of ours). The two alternate (ours, bare, ours, bare...) so a change in the
machine's load hits both.

Two figures per child:
- train loop: samples/s inside `Trainer.train()` (timed by wrapping it in the child: the same wrapper on both sides);
- whole call: samples/s of everything after imports (dataset loading, model loading, training; for ours also the
  validation scoring and the checkpoint save the bare script does not do).

    .venv/bin/python bench/training.py                  # 3 interleaved pairs per kind
    .venv/bin/python bench/training.py --repeats 5 --kinds dpo
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _trl_bench import (  # bench/_trl_bench.py
    WORDS,
    add_common_arguments,
    bare_arguments,
    run_child,
    time_train_loop,
    write_jsonl,
)

ROOT = Path(__file__).resolve().parent.parent
MARKERS = ("helpful", "clear", "kind")


def snapshot_rows(n: int, *, seed: int) -> list[dict]:
    """Rows as rewards' snapshot export writes them (TRL standard preference format plus the snapshot's keys)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "prompt": "Question: " + " ".join(rng.choices(WORDS, k=rng.randint(6, 14))) + "?",
                "chosen": " " + " ".join(rng.choices(WORDS, k=rng.randint(8, 30))) + f" {rng.choice(MARKERS)}.",
                "rejected": " " + " ".join(rng.choices(WORDS, k=rng.randint(8, 30))) + ".",
                "item_id": f"item-{seed}-{i}",
                "batch": "bench",
                "criteria_version": 1,
                "votes": {"a": 2, "b": 1, "tie": 0},
                "agreement": 0.67,
                "margin": 0.33,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------------- child


def run_ours(kind: str, settings: dict, train_file: Path, validation_file: Path) -> None:
    from trainer.configs import validate_config

    if kind == "reward_model":
        from trainer.ml.reward_model import train_reward_model as train
    else:
        from trainer.ml.dpo import train_dpo as train
    record = time_train_loop()
    config = validate_config(kind, settings)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as out:
        start = time.perf_counter()
        train(
            config=config,
            train_file=train_file,
            validation_file=validation_file,
            output_dir=Path(out),
            progress=lambda **_: None,
        )
        record["call_seconds"] = time.perf_counter() - start
    print(json.dumps(record))


def run_bare(kind: str, settings: dict, train_file: Path) -> None:
    """What a TRL user would write for the same run: load the JSONL, build the trainer, train."""
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    record = time_train_loop()
    with tempfile.TemporaryDirectory(prefix="bench-training-") as out:
        start = time.perf_counter()
        dataset = load_dataset("json", data_files=str(train_file), split="train")
        tokenizer = AutoTokenizer.from_pretrained(settings["base_model"])
        common = bare_arguments(settings, out)
        if kind == "reward_model":
            trainer = RewardTrainer(
                model=settings["base_model"],
                args=RewardConfig(**common),
                train_dataset=dataset,
                processing_class=tokenizer,
            )
        else:
            trainer = DPOTrainer(
                model=settings["base_model"],
                args=DPOConfig(**common, beta=settings["beta"]),
                train_dataset=dataset,
                processing_class=tokenizer,
            )
        trainer.train()
        record["call_seconds"] = time.perf_counter() - start
    print(json.dumps(record))


# --------------------------------------------------------------------------------------------------------- parent


def child(side: str, kind: str, settings: dict, train_file: Path, validation_file: Path, threads: int) -> dict:
    arguments = [
        "--child",
        side,
        "--kinds",
        kind,
        "--settings",
        json.dumps(settings),
        "--train-file",
        str(train_file),
        "--validation-file",
        str(validation_file),
    ]
    record = run_child(__file__, arguments, threads=threads, label=f"{side} {kind}")
    record["call_sps"] = record["samples"] / record["call_seconds"]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="reward_model,dpo")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved ours/bare pairs per kind")
    parser.add_argument("--pairs", type=int, default=960, help="training pairs (960 / batch 8 = 120 steps)")
    add_common_arguments(parser)
    args = parser.parse_args()

    if args.child:
        settings = json.loads(args.settings)
        if args.child == "ours":
            run_ours(args.kinds, settings, args.train_file, args.validation_file)
        else:
            run_bare(args.kinds, {**settings, "beta": settings.get("beta", 0.1)}, args.train_file)
        return

    sys.path.insert(0, str(ROOT))
    from trainer.ml.tiny import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="bench-training-") as work:
        work = Path(work)
        model_dir = build_tiny_model(work / "model", hidden_size=args.hidden, layers=args.layers, heads=4)
        train_file = write_jsonl(work / "train.jsonl", snapshot_rows(args.pairs, seed=1))
        validation_file = write_jsonl(work / "validation.jsonl", snapshot_rows(64, seed=2))
        print(
            f"tiny Llama hidden {args.hidden} x {args.layers} layers, {args.pairs} train pairs, batch {args.batch_size}, "
            f"1 epoch, OMP_NUM_THREADS={args.threads}; load average at start {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        for kind in args.kinds.split(","):
            settings = {
                "base_model": str(model_dir),
                "batch_size": args.batch_size,
                "epochs": 1,
                "max_length": 256,
                "seed": 0,
                "learning_rate": 1e-4 if kind == "reward_model" else 1e-5,
            }
            ratios_loop, ratios_call, ratios_cpu = [], [], []
            for repeat in range(args.repeats):
                ours = child("ours", kind, settings, train_file, validation_file, args.threads)
                bare = child("bare", kind, settings, train_file, validation_file, args.threads)
                ratios_loop.append(ours["loop_sps"] / bare["loop_sps"])
                ratios_call.append(ours["call_sps"] / bare["call_sps"])
                ratios_cpu.append(ours["cpu_sps"] / bare["cpu_sps"])
                print(
                    f"{kind:12s} #{repeat + 1}  ours {ours['loop_sps']:7.1f} samples/s loop, {ours['call_sps']:6.1f} "
                    f"whole call | bare {bare['loop_sps']:7.1f} loop, {bare['call_sps']:6.1f} whole | "
                    f"ratio loop {ratios_loop[-1]:.3f}, whole {ratios_call[-1]:.3f}, loop CPU {ratios_cpu[-1]:.3f} | "
                    f"CPU samples/s {ours['cpu_sps']:.1f}/{bare['cpu_sps']:.1f} | steps {ours['steps']}/"
                    f"{bare['steps']} | load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            print(
                f"{kind:12s} median ratio ours/bare: train loop {statistics.median(ratios_loop):.3f}, "
                f"whole call {statistics.median(ratios_call):.3f}, train loop per CPU second {statistics.median(ratios_cpu):.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
