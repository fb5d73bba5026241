"""SFT throughput: our SFT run (trainer.ml.sft.train_sft) against a bare TRL SFTTrainer script on the same data.

Each measurement is a fresh child process (`OMP_NUM_THREADS` fixed) that either calls our function (with a no-op
progress) or runs the few lines a TRL user would write: `datasets.load_dataset("json")` on the snapshot's train
file + `SFTTrainer` with the same SFTConfig knobs (batch size, learning rate, epochs, seed, max_length,
assistant_only_loss=True, fp32 on CPU, no activation checkpointing, no saving or evaluation during training). Both
use the same tiny Llama (trainer.ml.tiny.build_tiny_model, whose chat template marks the assistant's tokens) and the
same rows in the SFT snapshot's format (messages plus item_id, source, demonstration_id, batch). The two alternate
(ours, bare, ours, bare...) so a change in the machine's load hits both.

Figures per child, samples = optimizer steps x batch size:
- train loop per CPU second: samples / process CPU time inside `Trainer.train()` (the same wrapper on both sides);
- whole call per CPU second: samples / process CPU time of everything after the imports (loading, tokenising,
  training; for ours also the validation split's token loss before and after training and the checkpoint save,
  which the bare script does not do);
- train loop, wall: samples / wall time inside `Trainer.train()`.

    .venv/bin/python bench/sft_train.py                 # 2 interleaved pairs, about a minute and a half
    .venv/bin/python bench/sft_train.py --repeats 3 --rows 960
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


def snapshot_rows(n: int, *, seed: int) -> list[dict]:
    """Rows as an SFT snapshot holds them (TRL conversational format plus the snapshot's keys)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt = "Question: " + " ".join(rng.choices(WORDS, k=rng.randint(6, 14))) + "?"
        answer = " ".join(rng.choices(WORDS, k=rng.randint(10, 40))) + "."
        rows.append(
            {
                "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                "item_id": f"item-{seed}-{i}",
                "source": "human",
                "demonstration_id": i + 1,
                "batch": "bench",
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------------- child


def run_ours(settings: dict, train_file: Path, validation_file: Path) -> None:
    from trainer.configs import validate_config
    from trainer.ml.sft import train_sft

    record = time_train_loop()
    config = validate_config("sft", settings)
    with tempfile.TemporaryDirectory(prefix="bench-sft-") as out:
        start, start_cpu = time.perf_counter(), time.process_time()
        evaluation = train_sft(
            config=config,
            train_file=train_file,
            validation_file=validation_file,
            output_dir=Path(out),
            progress=lambda **_: None,
        )
        record["call_seconds"] = time.perf_counter() - start
        record["call_cpu_seconds"] = time.process_time() - start_cpu
    record["perplexity"] = [evaluation["base_validation_perplexity"], evaluation["validation_perplexity"]]
    print(json.dumps(record))


def run_bare(settings: dict, train_file: Path) -> None:
    """What a TRL user would write for the same run: load the JSONL, build the trainer, train."""
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    record = time_train_loop()
    with tempfile.TemporaryDirectory(prefix="bench-sft-") as out:
        start, start_cpu = time.perf_counter(), time.process_time()
        dataset = load_dataset("json", data_files=str(train_file), split="train")
        trainer = SFTTrainer(
            model=settings["base_model"],
            args=SFTConfig(**bare_arguments(settings, out), assistant_only_loss=True),
            train_dataset=dataset,
            processing_class=AutoTokenizer.from_pretrained(settings["base_model"]),
        )
        trainer.train()
        record["call_seconds"] = time.perf_counter() - start
        record["call_cpu_seconds"] = time.process_time() - start_cpu
    print(json.dumps(record))


# --------------------------------------------------------------------------------------------------------- parent


def child(side: str, settings: dict, train_file: Path, validation_file: Path, threads: int) -> dict:
    arguments = ["--child", side, "--settings", json.dumps(settings)]
    arguments += ["--train-file", str(train_file), "--validation-file", str(validation_file)]
    record = run_child(__file__, arguments, threads=threads, label=side)
    record["call_cpu_sps"] = record["samples"] / record["call_cpu_seconds"]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved ours/bare pairs")
    parser.add_argument("--rows", type=int, default=480, help="training demonstrations (480 / batch 8 = 60 steps)")
    add_common_arguments(parser)
    args = parser.parse_args()

    if args.child:
        settings = json.loads(args.settings)
        if args.child == "ours":
            run_ours(settings, args.train_file, args.validation_file)
        else:
            run_bare(settings, args.train_file)
        return

    sys.path.insert(0, str(ROOT))
    from trainer.ml.tiny import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="bench-sft-") as work:
        work = Path(work)
        model_dir = build_tiny_model(work / "model", hidden_size=args.hidden, layers=args.layers, heads=4)
        train_file = write_jsonl(work / "train.jsonl", snapshot_rows(args.rows, seed=1))
        validation_file = write_jsonl(work / "validation.jsonl", snapshot_rows(max(8, args.rows // 10), seed=2))
        print(
            f"tiny Llama hidden {args.hidden} x {args.layers} layers, {args.rows} train demonstrations, batch "
            f"{args.batch_size}, 1 epoch, OMP_NUM_THREADS={args.threads}; load average at start "
            f"{os.getloadavg()[0]:.2f}",
            flush=True,
        )
        settings = {
            "base_model": str(model_dir),
            "batch_size": args.batch_size,
            "epochs": 1,
            "max_length": 256,
            "seed": 0,
            "learning_rate": 2e-5,
        }
        ratios = {"cpu": [], "call_cpu": [], "loop": []}
        for repeat in range(args.repeats):
            ours = child("ours", settings, train_file, validation_file, args.threads)
            bare = child("bare", settings, train_file, validation_file, args.threads)
            ratios["cpu"].append(ours["cpu_sps"] / bare["cpu_sps"])
            ratios["call_cpu"].append(ours["call_cpu_sps"] / bare["call_cpu_sps"])
            ratios["loop"].append(ours["loop_sps"] / bare["loop_sps"])
            print(
                f"sft #{repeat + 1}  per CPU s: loop {ours['cpu_sps']:.1f}/{bare['cpu_sps']:.1f} "
                f"(ratio {ratios['cpu'][-1]:.3f}), whole call {ours['call_cpu_sps']:.1f}/{bare['call_cpu_sps']:.1f} "
                f"(ratio {ratios['call_cpu'][-1]:.3f}) | wall loop {ours['loop_sps']:.1f}/{bare['loop_sps']:.1f} "
                f"(ratio {ratios['loop'][-1]:.3f}) | steps {ours['steps']}/{bare['steps']} | validation perplexity "
                f"{ours['perplexity'][0]:.1f} -> {ours['perplexity'][1]:.1f} | load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        print(
            f"sft median ratio ours/bare: train loop per CPU second {statistics.median(ratios['cpu']):.3f}, whole "
            f"call per CPU second {statistics.median(ratios['call_cpu']):.3f}, train loop wall "
            f"{statistics.median(ratios['loop']):.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
