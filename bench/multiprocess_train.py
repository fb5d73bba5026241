"""Two-process reward-model training: Tandem's launch against the same training under a bare `accelerate launch`.

"ours": what a run with num_processes=2 does on a CPU worker: the Accelerate config Tandem writes
(trainer.launch.config.accelerate_config), its launch command line (launch_command: `accelerate launch --multi_gpu
--max_restarts 0 --monitor_interval 0.2`), and in each rank what trainer.launch.entry does around the training
(output into a per-rank log, the process group joined with the run's collective timeout) before calling our
`train_reward_model` (rank 0 with a progress callback, the other with the silent one); the parent supervises the
group as trainer.launch.supervisor does (its ProcessGroup, checked every WATCH_SECONDS), and its CPU is counted too.
Not in it: the database (rank 0's progress writes, at most once a second, and the supervisor's row reads).
"bare": `accelerate launch --multi_gpu --num_processes 2` of the few lines a TRL user writes (RewardTrainer on the
JSONL), the parent only waiting.

Figure: samples per CPU second of the training loop, summed over both ranks (each rank times its own
`Trainer.train()` with time.process_time), plus the supervisor's CPU for ours. The sides alternate.

    .venv/bin/python bench/multiprocess_train.py                 # 3 interleaved pairs
    .venv/bin/python bench/multiprocess_train.py --repeats 1 --pairs 256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _trl_bench import WORDS, add_common_arguments, bare_arguments, time_train_loop, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rows(n: int, *, seed: int) -> list[dict]:
    import random

    rng = random.Random(seed)
    return [
        {
            "prompt": "Question: " + " ".join(rng.choices(WORDS, k=rng.randint(6, 14))) + "?",
            "chosen": " " + " ".join(rng.choices(WORDS, k=rng.randint(8, 30))) + " helpful.",
            "rejected": " " + " ".join(rng.choices(WORDS, k=rng.randint(8, 30))) + ".",
            "margin": 0.3,
        }
        for _ in range(n)
    ]


# ---------------------------------------------------------------------------------------------------------- ranks


def rank_ours(args) -> None:
    from trainer.configs import validate_config
    from trainer.launch.entry import SilentProgress, _join_process_group, _redirect_output, rank

    number = rank()
    _redirect_output(args.record_dir, number)
    _join_process_group(600)
    from trainer.ml.reward_model import train_reward_model

    record = time_train_loop()
    config = validate_config("reward_model", json.loads(args.settings))
    steps = []
    progress = (lambda **kw: steps.append(kw["step"])) if number == 0 else SilentProgress()
    with tempfile.TemporaryDirectory(prefix="bench-mp-") as out:
        train_reward_model(
            config=config,
            train_file=args.train_file,
            validation_file=args.validation_file,
            output_dir=Path(out),
            progress=progress,
        )
    (args.record_dir / f"record-{number}.json").write_text(json.dumps(record))


def rank_bare(args) -> None:
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    settings = json.loads(args.settings)
    record = time_train_loop()
    with tempfile.TemporaryDirectory(prefix="bench-mp-") as out:
        dataset = load_dataset("json", data_files=str(args.train_file), split="train")
        trainer = RewardTrainer(
            model=settings["base_model"],
            args=RewardConfig(**bare_arguments(settings, out)),
            train_dataset=dataset.remove_columns(["margin"]),
            processing_class=AutoTokenizer.from_pretrained(settings["base_model"]),
        )
        trainer.train()
    (args.record_dir / f"record-{os.environ.get('RANK', '0')}.json").write_text(json.dumps(record))


# --------------------------------------------------------------------------------------------------------- parent


def launch(side: str, args, settings: dict, work: Path, repeat: int) -> dict:
    from trainer.launch.config import accelerate_config, launch_command, write_accelerate_config
    from trainer.launch.supervisor import WATCH_SECONDS, ProcessGroup

    record_dir = work / f"{side}-{repeat}"
    record_dir.mkdir()
    script = [
        str(Path(__file__).resolve()),
        "--child",
        side,
        "--settings",
        json.dumps(settings),
        "--train-file",
        str(args.train_file),
        "--validation-file",
        str(args.validation_file),
        "--record-dir",
        str(record_dir),
    ]
    if side == "ours":
        config = accelerate_config(config={"num_processes": 2}, device_type="cpu", device_dtype="float32")
        config_file = write_accelerate_config(folder=record_dir, config=config)
        command = launch_command(python=sys.executable, config_file=config_file, config=config, run_id=0)
        command = command[: command.index("-m", 3)] + script  # the bench's rank code instead of the run entry
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
        command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        command += ["--main_process_port", "0", *script]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    supervisor_cpu = time.process_time()
    with (record_dir / "launcher.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    if side == "ours":
        group = ProcessGroup(process, expected_ranks=2, marker="multiprocess_train.py --child")
        while process.poll() is None:
            group.refresh()
            group.rank_alive(0)
            group.rank_alive(1)
            time.sleep(WATCH_SECONDS)
    process.wait()
    supervisor_cpu = time.process_time() - supervisor_cpu if side == "ours" else 0.0
    if process.returncode:
        sys.stderr.write((record_dir / "launcher.log").read_text()[-4000:])
        raise SystemExit(f"{side} failed ({process.returncode}); logs in {record_dir}")
    records = [json.loads((record_dir / f"record-{r}.json").read_text()) for r in (0, 1)]
    samples = sum(r["samples"] for r in records)
    cpu = sum(r["train_cpu_seconds"] for r in records) + supervisor_cpu
    wall = max(r["train_seconds"] for r in records)
    return {"samples": samples, "cpu": cpu, "cpu_sps": samples / cpu, "wall_sps": samples / wall, "sup": supervisor_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved ours/bare pairs")
    parser.add_argument("--pairs", type=int, default=512, help="training pairs (512 / (4 x 2 ranks) = 64 steps)")
    parser.add_argument("--record-dir", type=Path, help=argparse.SUPPRESS)
    add_common_arguments(parser)
    parser.set_defaults(batch_size=4)
    args = parser.parse_args()
    if args.child == "ours":
        return rank_ours(args)
    if args.child == "bare":
        return rank_bare(args)

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    django.setup()  # trainer.launch.supervisor (ProcessGroup) imports the models; no database is used
    from trainer.ml.tiny import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="bench-mp-") as work:
        work = Path(work)
        model_dir = build_tiny_model(work / "model", hidden_size=args.hidden, layers=args.layers, heads=4)
        args.train_file = write_jsonl(work / "train.jsonl", rows(args.pairs, seed=1))
        args.validation_file = write_jsonl(work / "validation.jsonl", rows(16, seed=2))
        settings = {
            "base_model": str(model_dir),
            "batch_size": args.batch_size,
            "epochs": 1,
            "max_length": 256,
            "seed": 0,
            "learning_rate": 1e-4,
        }
        print(
            f"2 processes (gloo), tiny Llama hidden {args.hidden} x {args.layers} layers, {args.pairs} pairs, "
            f"batch {args.batch_size} per process, OMP_NUM_THREADS={args.threads}; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        ratios = []
        for repeat in range(args.repeats):
            ours = launch("ours", args, settings, work, repeat)
            bare = launch("bare", args, settings, work, repeat)
            ratios.append(ours["cpu_sps"] / bare["cpu_sps"])
            print(
                f"#{repeat + 1} ours {ours['cpu_sps']:.1f} samples/CPU s ({ours['wall_sps']:.1f}/s wall, supervisor "
                f"{ours['sup']:.2f} CPU s) | bare {bare['cpu_sps']:.1f} samples/CPU s ({bare['wall_sps']:.1f}/s wall) "
                f"| ratio {ratios[-1]:.3f} | samples {ours['samples']}/{bare['samples']} | load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        print(f"median ratio ours/bare, samples per CPU second: {statistics.median(ratios):.3f}", flush=True)


if __name__ == "__main__":
    main()
