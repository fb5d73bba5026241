"""The worker side of a multi-process run: start `accelerate launch` as a child process group, watch it, end it.

The worker that claimed the run stays its supervisor until the group has ended. Every WATCH_SECONDS it reads the
run's row and the group's processes:

- cancel asked, the time limit passed, or no heartbeat from rank 0 for TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS: the
  whole group is ended (SIGTERM, then SIGKILL after GRACE_SECONDS) and the run is cancelled / failed / lost;
- a rank that failed (its error file) or vanished without finishing (killed): the group is ended at once and the
  run fails with that rank's error; the other ranks' collective timeout bounds their own wait in any case;
- the launcher exits: 0 means rank 0 has recorded the run's success; anything else fails the run with the first
  failing rank's error.

torchrun starts each rank in a session of its own, so "the group" is the launcher's process group plus every
process found under it (tracked as they appear, since a rank's children outlive nothing once it is killed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from trainer.launch import num_machines, num_processes, strategy
from trainer.launch.config import (
    CONFIG_FILENAME,
    accelerate_config,
    launch_command,
    machine_config_filename,
    write_accelerate_config,
)
from trainer.launch.entry import RUN_DIR_ENV, SUPERVISOR_PID_ENV, logs_dir, rank_file
from trainer.lineage import lineage_build
from trainer.models import Status, TrainingRun
from trainer.services.runs import run_finish

logger = logging.getLogger("trainer.run")

WATCH_SECONDS = 0.25
GRACE_SECONDS = 4.0
RESCAN_SECONDS = 5.0
FINISH_SECONDS = 30.0  # how long a succeeded run's processes have to exit by themselves
LAUNCHER_LOG = "launcher.log"


class ProcessGroup:
    """The launcher and every process under it, ended together. The process tree is scanned until every rank has
    appeared (then every RESCAN_SECONDS, for what a rank may start), so watching costs little CPU."""

    def __init__(self, process: subprocess.Popen, *, expected_ranks: int = 0, marker: str = "trainer.launch.entry"):
        self.process = process
        self.marker = marker  # on the command line of a rank
        self.expected_ranks = expected_ranks
        self.processes: dict[int, object] = {}  # pid -> psutil.Process (which knows its create time: no pid reuse)
        self.ranks: dict[int, int] = {}  # rank -> pid, for the processes running trainer.launch.entry
        self._scanned = 0.0

    def refresh(self) -> None:
        import psutil

        now = time.monotonic()
        if len(self.ranks) >= self.expected_ranks > 0 and now - self._scanned < RESCAN_SECONDS:
            return
        self._scanned = now
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for child in children:
            if child.pid in self.processes:
                continue
            self.processes[child.pid] = child
            try:
                if self.marker in " ".join(child.cmdline()):
                    rank = child.environ().get("RANK")
                    if rank is not None:
                        self.ranks.setdefault(int(rank), child.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue

    def alive_pids(self) -> list[int]:
        import psutil

        alive = []
        for pid, process in self.processes.items():
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        return alive

    def rank_alive(self, rank: int) -> bool:
        import psutil

        pid = self.ranks.get(rank)
        if pid is None:
            return False
        try:
            return self.processes[pid].is_running() and self.processes[pid].status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def _signal(self, signum: int) -> None:
        for target in (self.process.pid, *self.alive_pids()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(target), signum)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(target, signum)

    def end(self, *, grace: float = GRACE_SECONDS) -> None:
        """SIGTERM to everything in the group, SIGKILL to what is left after `grace` seconds."""
        self.refresh()
        if self.process.poll() is None or self.alive_pids():
            self._signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and (self.process.poll() is None or self.alive_pids()):
                time.sleep(0.1)
            if self.process.poll() is None or self.alive_pids():
                self._signal(signal.SIGKILL)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            logger.error("launcher %s did not exit after SIGKILL", self.process.pid)


def _failed_rank(*, run_dir: Path, group: ProcessGroup, vanished: dict[int, float]) -> tuple[int, str, str] | None:
    """(rank, error, traceback) of the rank that failed first: one that vanished without a word (killed) before
    any error was written, else the earliest error file; None when no rank failed."""
    errors = []
    for path in sorted(logs_dir(run_dir).glob("rank-*.error.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        errors.append((float(record.get("time", 0)), int(record["rank"]), record["error"], record.get("traceback", "")))
    killed = []
    for rank, seen_gone in vanished.items():
        if not any(rank_file(run_dir, rank, suffix).exists() for suffix in ("done", "terminated", "error.json")):
            killed.append((seen_gone, rank))
    if killed:  # a killed rank comes first: the errors of the others are most likely its consequences
        _seen_gone, rank = min(killed)
        return rank, _killed_message(run_dir=run_dir, rank=rank, pid=group.ranks.get(rank)), ""
    if errors:
        _time, rank, error, text = min(errors)
        return rank, f"Rank {rank}: {error}", text
    return None


def _killed_message(*, run_dir: Path, rank: int, pid: int | None) -> str:
    last = _last_error_line(rank_file(run_dir, rank, "log"))
    how = f"Rank {rank} (pid {pid}) died without reporting an error (killed by a signal, out of memory, or crashed)"
    return f"{how}; the last line of its log: {last}" if last else f"{how}."


def _last_error_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if "Error" in line or "error" in line or "Exception" in line:
            return line[:1000]
    return ""


def _launcher_error(run_dir: Path) -> str:
    return _last_error_line(logs_dir(run_dir) / LAUNCHER_LOG)


def _compute(*, run: TrainingRun, device, launch: dict) -> dict:
    """TrainingRun.compute of a multi-process run (docs/SCALING.md): the in-process facts (precision, attention;
    ConfigError for an option this worker cannot honour) with this launch's processes, machines and strategy."""
    from trainer.ml.compute import compute_facts

    facts = compute_facts(config=run.config, device=device)
    facts.update(
        processes=num_processes(run.config),
        machines=int(launch["num_machines"]),
        device_count=int(launch["num_processes"]),  # one device per process (a GPU, or a CPU gloo process)
        strategy=strategy(run.config),
        distributed_type=launch["distributed_type"],
    )
    return facts


def supervise(*, run: TrainingRun, deadline_monotonic: float) -> str:
    """Run `run` (num_processes > 1) as a child process group to its end; return the run's final status."""
    from trainer.ml.devices import pick_device

    run_dir = Path(settings.ARTIFACTS_DIR) / "runs" / str(run.pk)
    logs_dir(run_dir).mkdir(parents=True, exist_ok=True)
    for stale in logs_dir(run_dir).glob("rank-*.*"):
        if stale.suffix != ".log":
            stale.unlink()
    device = pick_device()
    config = accelerate_config(config=run.config, device_type=device.type, device_dtype=device.dtype)
    config_file = write_accelerate_config(folder=run_dir, config=config)
    described = f"{device.label} x{config['num_processes']} {strategy(run.config)}"
    run.compute = _compute(run=run, device=device, launch=config)
    lineage = {**lineage_build(run=run, device=described[:100]), "launch": config}
    TrainingRun.objects.filter(pk=run.pk).update(device=described[:100], compute=run.compute, lineage=lineage)
    command = launch_command(python=sys.executable, config_file=config_file, config=config, run_id=run.pk)
    logger.info(
        "run %s (%s) launched on %s processes (%s): %s",
        run.pk, run.kind, num_processes(run.config), described, " ".join(command),
    )  # fmt: skip
    group = _start_group(run=run, run_dir=run_dir, command=command, log_name=LAUNCHER_LOG)
    try:
        return _watch(run=run, group=group, run_dir=run_dir, deadline_monotonic=deadline_monotonic)
    finally:
        group.end()


def _start_group(*, run: TrainingRun, run_dir: Path, command: list[str], log_name: str) -> ProcessGroup:
    """The launcher as a child process in a session of its own, its ranks watching this process (they exit when it
    is gone), its output in logs/<log_name>."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
        RUN_DIR_ENV: str(run_dir),
        SUPERVISOR_PID_ENV: str(os.getpid()),
        "PYTHONUNBUFFERED": "1",
        # Accelerate and torch read these too: the run's collective timeout for NCCL's watchdog as well as gloo's.
        "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
    }
    with (logs_dir(run_dir) / log_name).open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, the run id an int
            command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return ProcessGroup(process, expected_ranks=num_processes(run.config))  # this machine's ranks


SHARED_WAIT_SECONDS = 60.0  # how long join_run waits for machine 0 to write the run's Accelerate config


def _check_joinable_here(*, run: TrainingRun, run_dir: Path, wait_seconds: float) -> None:
    """What this machine's ranks will read, checked before they start (a rank that failed on it here would leave
    machine 0's ranks waiting out the collective timeout): machine 0's Accelerate config in the run's folder (the
    artifacts folder is the shared one), the snapshot's files as their sha256s say, and the run's models."""
    from rewards.errors import DatasetTampered
    from rewards.services.datasets import dataset_verify
    from trainer.configs import ConfigError
    from trainer.errors import RunNotJoinable
    from trainer.services.execute import _load_config

    main_config = run_dir / CONFIG_FILENAME
    deadline = time.monotonic() + wait_seconds
    while not main_config.is_file():
        if time.monotonic() > deadline:
            raise RunNotJoinable(
                f"{main_config} is not here: machine 0 writes it when it launches the run, so this machine's "
                f"artifacts folder ({settings.ARTIFACTS_DIR}) must be the one machine 0 writes to (shared)."
            )
        time.sleep(WATCH_SECONDS)
    try:
        if run.snapshot is not None:
            dataset_verify(snapshot=run.snapshot)
        _load_config(run=run)
    except DatasetTampered as exc:
        raise RunNotJoinable(f"The run's snapshot cannot be read here: {exc.detail}") from exc
    except ConfigError as exc:
        problems = " ".join(f"{field}: {message}" for field, message in exc.errors.items())
        raise RunNotJoinable(f"The run's models cannot be loaded here: {problems}") from exc


def join(*, run_id: int, machine_rank: int, wait_seconds: float = 3600.0, say=None) -> str:
    """Machine `machine_rank` (1 or more) of a run on several machines: launch this machine's ranks of the run and
    stay with them until the run ends; returns the run's final status (RunNotJoinable when there is nothing to
    join). Machine 0 is the worker that took the run: it supervises the run (cancel, time limit, heartbeat, a rank's
    death) and records its end; this side ends its ranks once the run is over, and they exit by themselves if this
    process dies. Needs the run's database and its artifacts folder (shared, so every rank reads the snapshot and
    the main machine sees each rank's error file). Waits up to `wait_seconds` for a queued run to start."""
    from trainer.errors import RunNotJoinable
    from trainer.ml.devices import pick_device

    say = say or (lambda message: None)
    run = TrainingRun.objects.get(pk=run_id)
    machines = num_machines(run.config)
    if machines < 2:
        raise RunNotJoinable(f"Run {run.pk} trains on one machine (num_machines 1): there is nothing to join.")
    if not 1 <= machine_rank < machines:
        raise RunNotJoinable(
            f"machine_rank must be 1 to {machines - 1} for run {run.pk}: machine 0 is the worker that took it."
        )
    deadline = time.monotonic() + wait_seconds
    while run.status == Status.QUEUED and time.monotonic() < deadline:
        time.sleep(WATCH_SECONDS)
        run.refresh_from_db(fields=["status"])
    if run.status != Status.RUNNING:
        raise RunNotJoinable(f"Run {run.pk} is {run.status}: there is nothing to join.")
    run_dir = Path(settings.ARTIFACTS_DIR) / "runs" / str(run.pk)
    _check_joinable_here(run=run, run_dir=run_dir, wait_seconds=min(wait_seconds, SHARED_WAIT_SECONDS))
    logs_dir(run_dir).mkdir(parents=True, exist_ok=True)
    device = pick_device()
    config = accelerate_config(
        config={**run.config, "machine_rank": machine_rank}, device_type=device.type, device_dtype=device.dtype
    )
    config_file = write_accelerate_config(folder=run_dir, config=config, filename=machine_config_filename(machine_rank))
    command = launch_command(python=sys.executable, config_file=config_file, config=config, run_id=run.pk)
    say(f"Run {run.pk}: machine {machine_rank} of {machines} launching {num_processes(run.config)} processes.")
    group = _start_group(run=run, run_dir=run_dir, command=command, log_name=f"launcher.machine-{machine_rank}.log")
    try:
        while True:
            time.sleep(WATCH_SECONDS)
            group.refresh()
            status = TrainingRun.objects.filter(pk=run.pk).values_list("status", flat=True).get()
            if status == Status.SUCCEEDED:  # this machine's ranks finish their part by themselves
                with contextlib.suppress(subprocess.TimeoutExpired):
                    group.process.wait(timeout=FINISH_SECONDS)
                break
            if status != Status.RUNNING or group.process.poll() is not None:
                break
    finally:
        group.end()
    # The main machine records the end; a launcher that failed here makes its ranks' peers fail there in turn.
    deadline = time.monotonic() + FINISH_SECONDS
    while (status := TrainingRun.objects.filter(pk=run.pk).values_list("status", flat=True).get()) == Status.RUNNING:
        if time.monotonic() > deadline:
            break
        time.sleep(WATCH_SECONDS)
    return status


def _watch(*, run: TrainingRun, group: ProcessGroup, run_dir: Path, deadline_monotonic: float) -> str:
    heartbeat_timeout = timedelta(seconds=settings.TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS)
    vanished: dict[int, float] = {}
    verdict: tuple[str, str, str] | None = None  # (status, error, traceback)
    while verdict is None:
        time.sleep(WATCH_SECONDS)
        group.refresh()
        exited = group.process.poll()
        status, cancel, beat, step, total = (
            TrainingRun.objects.filter(pk=run.pk)
            .values_list("status", "cancel_requested", "heartbeat_at", "step", "total_steps")
            .get()
        )
        if status != Status.RUNNING:
            if status == Status.SUCCEEDED:  # recorded by rank 0: let the ranks and the launcher exit on their own
                with contextlib.suppress(subprocess.TimeoutExpired):
                    group.process.wait(timeout=FINISH_SECONDS)
            elif exited is None:
                logger.warning("run %s is %s: ending its process group", run.pk, status)
            break
        if cancel:
            verdict = (Status.CANCELLED, f"Cancelled at step {step} of {total}.", "")
            break
        if time.monotonic() > deadline_monotonic:
            verdict = (Status.FAILED, f"Stopped at step {step}: time limit of {run.time_limit_seconds} s reached.", "")
            break
        if beat is not None and timezone.now() - beat > heartbeat_timeout:
            message = (
                f"Lost: no heartbeat from rank 0 since {beat:%Y-%m-%d %H:%M:%S} UTC (timeout "
                f"{heartbeat_timeout.total_seconds():g} s); its process group was ended."
            )
            verdict = (Status.LOST, message, "")
            break
        for rank in list(group.ranks):
            if rank not in vanished and not group.rank_alive(rank):
                vanished[rank] = time.monotonic()
        failed = _failed_rank(run_dir=run_dir, group=group, vanished=vanished)
        if failed is not None:
            rank, error, text = failed
            verdict = (Status.FAILED, error, text)
            break
        if exited is not None:
            if exited == 0:
                # Rank 0 records the success itself; a clean exit without it is a failure.
                verdict = (Status.FAILED, "The processes exited without recording a result.", "")
            else:
                verdict = (
                    Status.FAILED,
                    f"accelerate launch exited with status {exited}: {_launcher_error(run_dir)}",
                    "",
                )
            break
    group.end()
    if verdict is None:
        # Ended by someone else (a success rank 0 recorded, or marked lost/failed): its verdict stands, unless a rank
        # had failed first.
        return TrainingRun.objects.filter(pk=run.pk).values_list("status", flat=True).get()
    status, error, text = verdict
    if status == Status.FAILED:
        # The first failing rank, once every process has gone (its error file may land as it dies).
        failed = _failed_rank(run_dir=run_dir, group=group, vanished=vanished)
        if failed is not None and not error.startswith("Stopped at step"):
            _rank, error, text = failed
    run_finish(
        run_id=run.pk,
        status=status,
        error=error[:5000],
        error_traceback=text,
        from_statuses=(Status.RUNNING,),
        eta=None,
    )
    logger.warning("run %s ended: %s", run.pk, error)
    return TrainingRun.objects.filter(pk=run.pk).values_list("status", flat=True).get()
