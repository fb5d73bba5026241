"""The worker side of a run: claim it, train it with a progress callback that keeps the row current, record the end.

Imported by the Celery task only. The training code (torch, transformers, trl) is imported inside run_execute,
so importing this module stays cheap; the web process never calls it.
"""

import logging
import math
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from rewards.errors import DatasetTampered
from rewards.selectors import dataset_files
from rewards.services.datasets import dataset_verify
from trainer.checkpoints import checkpoint_path, checkpoint_record, checkpoint_verify, checkpoints_retain
from trainer.configs import ConfigError
from trainer.errors import CheckpointGone, CheckpointTampered, run_failure_message
from trainer.launch import world_size
from trainer.lineage import lineage_build, lineage_write
from trainer.model_paths import NOT_ALLOWED, config_models_resolve, hub_offline_unless_allowed
from trainer.models import POLICY_KINDS, Kind, RunMetric, Status, TrainingRun
from trainer.progress import RunCancelled
from trainer.services.runs import checkpoint_dir, run_finish, run_output_dir

logger = logging.getLogger("trainer.run")

# At most this many points per metric are stored over a run (every k-th step, plus the last and the evaluation).
MAX_POINTS_PER_METRIC = 2000
PROGRESS_WRITE_SECONDS = 1.0  # step/eta/heartbeat and buffered metrics go to the database at most this often
LOG_EVERY_SECONDS = 10.0  # the worker log's progress bar
TIME_LIMIT = "time limit"


class RunProgress:
    """trainer.progress.Progress for one run: heartbeat, step/total/ETA and metrics into the database; raises
    RunCancelled when a cancel was asked, the run's time limit passed, or the run was taken away (marked lost)."""

    def __init__(self, *, run: TrainingRun, deadline_monotonic: float):
        self.run_id = run.pk
        self.deadline = deadline_monotonic
        self.time_limit_seconds = run.time_limit_seconds
        self.step = 0
        self.total = 0
        self._pending: list[RunMetric] = []
        self._first: tuple[float, int] | None = None  # (monotonic time, step) of the first call, for the ETA
        self._last_write = 0.0
        self._last_log = 0.0
        self.eta_seconds: float | None = None
        # The training metrics of the last step reported (not the evaluation's): what a checkpoint saved at that
        # step records.
        self.last_metrics: dict[str, float] = {}
        self.last_metrics_step: int | None = None

    def metrics_at(self, step: int) -> dict[str, float]:
        """The training metrics logged at `step`, if that is the last step reported; else nothing."""
        return dict(self.last_metrics) if self.last_metrics_step == int(step) else {}

    def __call__(self, *, step: int, total: int, metrics: dict[str, float]) -> None:
        now = time.monotonic()
        self.step, self.total = int(step), max(int(total), int(step))
        if self._first is None:
            self._first = (now, self.step)
        evaluation = any(name.startswith("eval_") for name in metrics)
        if not evaluation:
            numbers = {str(k): _number(v) for k, v in metrics.items()}
            self.last_metrics = {k: v for k, v in numbers.items() if v is not None}
            self.last_metrics_step = self.step
        stride = max(1, math.ceil(self.total / MAX_POINTS_PER_METRIC)) if self.total else 1
        if evaluation or self.step % stride == 0 or self.step >= self.total or self.step == self._first[1]:
            for name, value in metrics.items():
                number = _number(value)
                if number is not None:
                    self._pending.append(
                        RunMetric(run_id=self.run_id, step=self.step, name=str(name)[:100], value=number)
                    )
        started, first_step = self._first
        if self.step > first_step and self.total:
            rate = (now - started) / (self.step - first_step)
            self.eta_seconds = max(0.0, rate * (self.total - self.step))
        status, cancel_requested = (
            TrainingRun.objects.filter(pk=self.run_id).values_list("status", "cancel_requested").get()
        )
        if cancel_requested:
            self.flush()
            raise RunCancelled("cancel requested")
        if status != Status.RUNNING:
            raise RunCancelled(f"the run is {status}")
        if now > self.deadline:
            self.flush()
            raise RunCancelled(TIME_LIMIT)
        if now - self._last_write >= PROGRESS_WRITE_SECONDS or self.step >= self.total or evaluation:
            self.flush()
        if now - self._last_log >= LOG_EVERY_SECONDS or self.step >= self.total:
            self._last_log = now
            logger.info("%s", self.progress_line(metrics))

    def flush(self) -> None:
        now = timezone.now()
        eta = now + timedelta(seconds=self.eta_seconds) if self.eta_seconds is not None else None
        TrainingRun.objects.filter(pk=self.run_id, status=Status.RUNNING).update(
            step=self.step, total_steps=self.total, eta=eta, heartbeat_at=now
        )
        if self._pending:
            RunMetric.objects.bulk_create(self._pending, batch_size=500)
            self._pending = []
        self._last_write = time.monotonic()

    def progress_line(self, metrics: dict[str, float]) -> str:
        fraction = self.step / self.total if self.total else 0.0
        bar = "#" * round(fraction * 30)
        eta = f"eta {timedelta(seconds=round(self.eta_seconds))}" if self.eta_seconds is not None else "eta ?"
        shown = " ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:6] if _number(v) is not None)
        return f"run {self.run_id} [{bar:<30}] {self.step}/{self.total} {fraction:4.0%} {eta} {shown}".rstrip()


def _number(value: object) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class Heartbeat(threading.Thread):
    """Beats every TANDEM_RUN_HEARTBEAT_SECONDS while the process lives, so loading a model or a long evaluation
    is not taken for a dead worker. Stops when told, or once the run is no longer running."""

    def __init__(self, *, run_id: int, interval: float):
        super().__init__(name=f"heartbeat-run-{run_id}", daemon=True)
        self.run_id = run_id
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                beating = TrainingRun.objects.filter(pk=self.run_id, status=Status.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
                if not beating:
                    return
        except Exception:  # a heartbeat that cannot write is a missing heartbeat: the reaper will say so
            logger.exception("run %s: heartbeat failed", self.run_id)
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=30)


def _claim(*, run_id: int, task_id: str, worker: str) -> TrainingRun | None:
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=Status.QUEUED, cancel_requested=False).update(
        status=Status.RUNNING, started_at=now, heartbeat_at=now, celery_task_id=task_id or "", worker=worker[:255]
    )
    if not claimed:
        return None
    return TrainingRun.objects.select_related("snapshot", "reward_model", "project", "resume_from").get(pk=run_id)


def _load_config(*, run: TrainingRun) -> dict:
    """The config the training code loads from, its models checked again: the stored config may predate the rules,
    or a folder may have become a link out of the roots since the run was queued. Raises ConfigError."""
    _, load = config_models_resolve(kind=run.kind, config=run.config, project_id=run.project_id)
    reward_model = run.reward_model
    if reward_model is not None and (
        reward_model.project_id != run.project_id or reward_model.status != Status.SUCCEEDED
    ):
        raise ConfigError({"reward_model": NOT_ALLOWED})
    hub_offline_unless_allowed()
    return load


def _train(*, run: TrainingRun, config: dict, files: dict[str, Path], output_dir: Path, progress: RunProgress) -> dict:
    if run.kind == Kind.GENERATE:
        from trainer.generation import generate_execute

        return generate_execute(run=run, config=config, output_dir=output_dir, progress=progress)
    common = {
        "config": config,
        "train_file": files["train"],
        "validation_file": files["validation"],
        "output_dir": output_dir,
        "progress": progress,
    }
    if run.kind == Kind.REWARD_MODEL:
        from trainer.ml.reward_model import train_reward_model

        return train_reward_model(**common)
    common["on_checkpoint"] = _checkpoint_recorder(run=run, config=config, progress=progress)
    common["resume_from"] = checkpoint_path(checkpoint=run.resume_from) if run.resume_from_id else None
    if run.kind == Kind.DPO:
        from trainer.ml.dpo import train_dpo

        return train_dpo(**common)
    if run.kind == Kind.SFT:
        from trainer.ml.sft import train_sft

        return train_sft(**common)
    reward_model_dir = run_output_dir(run=run.reward_model)
    if run.kind == Kind.PPO:
        from trainer.ppo import train_ppo

        return train_ppo(**common, reward_model_dir=reward_model_dir)
    if run.kind == Kind.RLOO:
        from trainer.ml.rloo import train_rloo

        return train_rloo(**common, reward_model_dir=reward_model_dir)
    raise ValueError(f"unknown run kind {run.kind!r}")


def _checkpoint_recorder(*, run: TrainingRun, config: dict, progress: RunProgress):
    """The `on_checkpoint` the policy trainers call: a Checkpoint row as each one is saved (so a run that stops
    keeps those it reached), with the metrics logged at its step, then the run's keep_checkpoints applied."""
    keep = config.get("keep_checkpoints")

    def record(*, step: int, folder: Path, metrics: dict[str, float]) -> None:
        checkpoint_record(run_id=run.pk, step=step, folder=folder, metrics={**progress.metrics_at(step), **metrics})
        checkpoints_retain(run_id=run.pk, keep=keep)

    return record


def run_execute(*, run_id: int, task_id: str = "", worker: str = "") -> str:
    """Runs one training run to its end in this process; returns the run's final status.

    Only a queued run is taken: a message delivered again (acks_late after a lost worker) finds its run lost,
    cancelled or finished and does nothing. The database, not the broker, says what a run is doing.
    """
    run = _claim(run_id=run_id, task_id=task_id, worker=worker)
    if run is None:
        status = TrainingRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
        logger.warning("run %s not started: it is %s", run_id, status or "gone")
        return status or "missing"
    started = time.monotonic()
    heartbeat = Heartbeat(run_id=run.pk, interval=settings.TANDEM_RUN_HEARTBEAT_SECONDS)
    heartbeat.start()
    progress = RunProgress(run=run, deadline_monotonic=started + run.time_limit_seconds)
    output_dir = run_output_dir(run=run)
    try:
        if run.snapshot is not None:
            dataset_verify(snapshot=run.snapshot)  # again: the files may have changed since the run was queued
        if run.resume_from is not None:
            checkpoint_verify(checkpoint=run.resume_from)  # and so may the checkpoint's
        config = _load_config(run=run)
        output_dir.mkdir(parents=True, exist_ok=True)
        if world_size(run.config) > 1:
            # Several processes: a child process group under `accelerate launch`, supervised from here to its end.
            from trainer.launch.supervisor import supervise

            heartbeat.stop()  # rank 0 beats from now on, and the supervisor watches that it does
            return supervise(run=run, deadline_monotonic=started + run.time_limit_seconds)
        from trainer.ml.compute import compute_facts
        from trainer.ml.devices import pick_device

        picked = pick_device()
        device = picked.label[:100]
        # Processes, devices, strategy, precision (docs/SCALING.md); ConfigError for an option this worker cannot
        # honour.
        run.compute = compute_facts(config=config, device=picked)
        TrainingRun.objects.filter(pk=run.pk).update(
            device=device, compute=run.compute, lineage=lineage_build(run=run, device=device)
        )
        logger.info("run %s (%s) started on %s, snapshot %s", run.pk, run.kind, device, run.snapshot_id)
        files = dataset_files(snapshot=run.snapshot) if run.snapshot is not None else {}
        evaluation = _train(run=run, config=config, files=files, output_dir=output_dir, progress=progress)
        progress.flush()
        if run.kind != Kind.GENERATE and not checkpoint_dir(run=run).is_dir():
            raise RuntimeError(f"the training function saved no checkpoint in {checkpoint_dir(run=run)}")
        return _succeed(run_id=run.pk, evaluation=evaluation, progress=progress)
    except RunCancelled as exc:
        _flush_quietly(progress)
        if exc.reason == TIME_LIMIT:
            message = f"Stopped at step {progress.step}: time limit of {run.time_limit_seconds} s reached."
            run_finish(run_id=run.pk, status=Status.FAILED, error=message, from_statuses=(Status.RUNNING,))
        elif exc.reason == "cancel requested":
            message = f"Cancelled at step {progress.step} of {progress.total}."
            run_finish(run_id=run.pk, status=Status.CANCELLED, error=message, from_statuses=(Status.RUNNING,))
        logger.warning("run %s stopped: %s", run.pk, exc.reason)
    except (DatasetTampered, CheckpointTampered, CheckpointGone, ConfigError) as exc:
        message = run_failure_message(exc)
        run_finish(run_id=run.pk, status=Status.FAILED, error=message, from_statuses=(Status.RUNNING,))
        logger.error("run %s refused: %s", run.pk, message)
    except BaseException as exc:
        # SoftTimeLimitExceeded, a worker's warm shutdown (SystemExit) and every training error end here.
        _flush_quietly(progress)
        message = run_failure_message(exc)
        if type(exc).__name__ == "SoftTimeLimitExceeded":
            message = f"Stopped inside step {progress.step}: time limit of {run.time_limit_seconds} s reached."
        run_finish(
            run_id=run.pk,
            status=Status.FAILED,
            error=message[:5000],
            error_traceback=traceback.format_exc(),
            from_statuses=(Status.RUNNING,),
        )
        logger.exception("run %s failed", run.pk)
        if not isinstance(exc, Exception):
            raise
    finally:
        heartbeat.stop()
    return TrainingRun.objects.filter(pk=run.pk).values_list("status", flat=True).get()


def _flush_quietly(progress: RunProgress) -> None:
    try:
        progress.flush()
    except Exception:
        logger.exception("run %s: could not store the last progress", progress.run_id)


def _succeed(*, run_id: int, evaluation: dict, progress: RunProgress | None = None, launch: dict | None = None) -> str:
    run = TrainingRun.objects.select_related("snapshot", "reward_model", "project", "created_by").get(pk=run_id)
    run.evaluation = {str(k): v for k, v in (evaluation or {}).items()}
    run.finished_at = timezone.now()
    run.status = Status.SUCCEEDED
    lineage = lineage_build(run=run, device=run.device)
    if launch is not None:  # a multi-process run: the Accelerate config it was launched with (trainer.launch)
        lineage["launch"] = launch
    folders = [run_output_dir(run=run)] + ([checkpoint_dir(run=run)] if run.kind != Kind.GENERATE else [])
    lineage_write(lineage=lineage, directories=folders)
    if run.kind in POLICY_KINDS and progress is not None:
        # After lineage.json: the manifest covers every file a download or a generate run will read.
        checkpoint_record(
            run_id=run_id,
            step=progress.step,
            folder=checkpoint_dir(run=run),
            metrics=progress.metrics_at(progress.step),
            final=True,
            resumable=False,
        )
    done = run_finish(
        run_id=run_id,
        status=Status.SUCCEEDED,
        from_statuses=(Status.RUNNING,),
        evaluation=run.evaluation,
        lineage=lineage,
        eta=None,
    )
    if not done:  # marked lost or failed meanwhile: the checkpoint stays on disk, the row keeps its verdict
        logger.warning("run %s finished training but was no longer running", run_id)
        return TrainingRun.objects.filter(pk=run_id).values_list("status", flat=True).get()
    logger.info("run %s succeeded: %s", run_id, run.evaluation)
    return Status.SUCCEEDED
