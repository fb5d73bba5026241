"""What every rank of a multi-process run runs: `python -m trainer.launch.entry --run-id N` (under accelerate launch).

Each rank sets Django up, joins the process group with the run's collective timeout, and calls the same training
function the in-process path calls (trainer.services.execute._train). Rank 0 alone reports: heartbeat, steps and
metrics, checkpoints, the final evaluation and the success (trainer.services.execute._succeed). The others report
nothing. A rank that fails writes its error to logs/rank-N.error.json in the run's folder and exits non-zero; the
supervisor (trainer.launch.supervisor) fails the run with the first failing rank's error and ends the group.

Files in <run folder>/logs/: rank-N.log (the rank's stdout and stderr), rank-N.error.json (its error, if any),
rank-N.done (it finished its part), rank-N.terminated (it was told to stop by SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

LOGS_DIRNAME = "logs"
SUPERVISOR_PID_ENV = "TANDEM_SUPERVISOR_PID"
RUN_DIR_ENV = "TANDEM_RUN_DIR"
WATCH_SECONDS = 1.0


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def logs_dir(run_dir: Path) -> Path:
    return Path(run_dir) / LOGS_DIRNAME


def rank_file(run_dir: Path, rank_number: int, suffix: str) -> Path:
    return logs_dir(run_dir) / f"rank-{int(rank_number)}.{suffix}"


def _redirect_output(run_dir: Path, rank_number: int) -> None:
    """This rank's stdout and stderr (Python's and the C++ libraries') into logs/rank-N.log."""
    path = rank_file(run_dir, rank_number, "log")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    print(f"rank {rank_number} pid {os.getpid()} world size {os.environ.get('WORLD_SIZE', '?')}", flush=True)


def _on_sigterm(run_dir: Path, rank_number: int):
    def handler(signum, frame):
        # Told to stop (the supervisor or torchrun ending the group): say so, so this rank is not taken for the
        # one that failed, and go.
        try:
            rank_file(run_dir, rank_number, "terminated").write_text(f"{time.time()}\n")
        finally:
            os._exit(128 + signal.SIGTERM)

    return handler


def _watch_supervisor(pid: int) -> None:
    """Ends this rank when the worker that supervises it is gone (killed): a run whose worker died is lost, its
    heartbeat stops, and no orphan keeps a device busy."""
    import psutil

    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            try:
                alive = psutil.Process(pid).create_time() == started
            except psutil.NoSuchProcess:
                alive = False
            if not alive:
                os._exit(1)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def _join_process_group(timeout_seconds: int) -> None:
    """The process group, joined before Trainer's own setup so that its collective timeout is the run's: a rank
    left waiting for a dead peer gives up after that long (Accelerate reuses an initialised group)."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_seconds))


class SilentProgress:
    """The progress of ranks other than 0: they report nothing."""

    step = 0
    total = 0

    def __call__(self, *, step: int, total: int, metrics: dict[str, float]) -> None:
        self.step, self.total = int(step), int(total)

    def metrics_at(self, step: int) -> dict[str, float]:
        return {}

    def flush(self) -> None:
        return None


def train_rank(*, run_id: int, rank_number: int, run_dir: Path) -> None:
    """Train this rank's part of the run; rank 0 reports as the in-process path does."""
    from django.conf import settings

    from rewards.selectors import dataset_files
    from trainer.launch import collective_timeout_seconds
    from trainer.launch.config import CONFIG_FILENAME
    from trainer.models import Status, TrainingRun
    from trainer.progress import RunCancelled
    from trainer.services import execute

    run = TrainingRun.objects.select_related("snapshot", "reward_model", "project", "resume_from").get(pk=run_id)
    if run.status != Status.RUNNING:
        print(f"run {run_id} is {run.status}: nothing to do", flush=True)
        return
    main = rank_number == 0
    heartbeat = None
    if main:  # beating from the start: the other machines of a run may take a while to join the group
        heartbeat = execute.Heartbeat(run_id=run.pk, interval=settings.TANDEM_RUN_HEARTBEAT_SECONDS)
        heartbeat.start()
    try:
        _join_process_group(collective_timeout_seconds(run.config))
        config = execute._load_config(run=run)
        files = dataset_files(snapshot=run.snapshot) if run.snapshot is not None else {}
        # The supervisor holds the deadline, the cancel flag and the heartbeat watch: rank 0 only reports.
        progress = execute.RunProgress(run=run, deadline_monotonic=float("inf")) if main else SilentProgress()
        evaluation = execute._train(run=run, config=config, files=files, output_dir=run_dir, progress=progress)
        if main:
            progress.flush()
            launch = json.loads((run_dir / CONFIG_FILENAME).read_text())
            execute._succeed(run_id=run.pk, evaluation=evaluation, progress=progress, launch=launch)
    except RunCancelled:
        # Rank 0 saw the cancel (or the run taken away) at a step; the supervisor ends the group and says so.
        print(f"run {run_id}: rank {rank_number} stopped", flush=True)
    finally:
        if heartbeat is not None:
            heartbeat.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One rank of a Tandem multi-process run.")
    parser.add_argument("--run-id", type=int, required=True)
    args = parser.parse_args(argv)
    rank_number = rank()
    run_dir = Path(os.environ[RUN_DIR_ENV])
    _redirect_output(run_dir, rank_number)
    signal.signal(signal.SIGTERM, _on_sigterm(run_dir, rank_number))
    if os.environ.get(SUPERVISOR_PID_ENV):
        _watch_supervisor(int(os.environ[SUPERVISOR_PID_ENV]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    try:
        import django

        django.setup()
        train_rank(run_id=args.run_id, rank_number=rank_number, run_dir=run_dir)
    except BaseException as exc:
        text = traceback.format_exc()
        sys.stderr.write(text)
        sys.stderr.flush()
        from trainer.errors import run_failure_message  # Django-free: it holds even when Django did not start

        error = run_failure_message(exc)[:5000]
        record = {"rank": rank_number, "time": time.time(), "error": error, "traceback": text}
        rank_file(run_dir, rank_number, "error.json").write_text(json.dumps(record) + "\n")
        return 1
    rank_file(run_dir, rank_number, "done").write_text(f"{time.time()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
