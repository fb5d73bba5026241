"""What the TRL throughput benches (training.py, sft_train.py) share: the words their synthetic rows are drawn from,
the JSONL writer, the timer wrapped around `Trainer.train()` in a child, the bare TRL script's common config and the
child process itself. (`make bench` skips files starting with `_`.)"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    "the",
    "model",
    "explains",
    "a",
    "question",
    "with",
    "short",
    "reply",
    "long",
    "story",
    "facts",
    "code",
    "poem",
    "data",
    "clearly",
    "briefly",
    "and",
    "then",
    "our",
    "team",
    "answers",
    "user",
    "reviewer",
    "checks",
    "careful",
    "detail",
    "today",
    "again",
    "quickly",
    "politely",
]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both benches take: the tiny model's size, the batch size, the children's threads, and the hidden
    ones a child is started with."""
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each child")
    parser.add_argument("--child", choices=("ours", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--train-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--validation-file", type=Path, help=argparse.SUPPRESS)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def time_train_loop() -> dict:
    """Wrap transformers.Trainer.train (every TRL trainer inherits it) to time the loop, wall and process CPU, and
    count samples: the dict returned is filled in when train() returns."""
    from transformers import Trainer

    record: dict = {}
    original = Trainer.train

    def timed(self, *args, **kwargs):
        start, start_cpu = time.perf_counter(), time.process_time()
        output = original(self, *args, **kwargs)
        record["train_seconds"] = time.perf_counter() - start
        record["train_cpu_seconds"] = time.process_time() - start_cpu
        record["steps"] = self.state.global_step
        record["samples"] = (
            self.state.global_step * self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
        )
        record["hf_train_samples_per_second"] = output.metrics.get("train_samples_per_second")
        return output

    Trainer.train = timed
    return record


def bare_arguments(settings: dict, output_dir: str) -> dict:
    """The TRL config a user would write for the same run as ours: the same knobs, fp32 on CPU, no activation
    checkpointing, no saving, evaluation or reporting during training."""
    return {
        "output_dir": output_dir,
        "per_device_train_batch_size": settings["batch_size"],
        "learning_rate": settings["learning_rate"],
        "num_train_epochs": settings["epochs"],
        "seed": settings["seed"],
        "max_length": settings["max_length"],
        "bf16": False,
        "use_cpu": True,
        "activation_checkpointing": False,
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": "none",
    }


def run_child(script: str, arguments: list[str], *, threads: int, label: str) -> dict:
    """Run `script --child ...` with OMP_NUM_THREADS fixed; its last stdout line is its record (JSON), with the
    train loop's samples per wall and per CPU second added."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    done = subprocess.run([sys.executable, script, *arguments], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{label} child failed ({done.returncode})")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    record["loop_sps"] = record["samples"] / record["train_seconds"]
    record["cpu_sps"] = record["samples"] / record["train_cpu_seconds"]
    return record
