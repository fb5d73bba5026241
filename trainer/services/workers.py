"""The worker registry's writes: a worker serving training queues records what it can run when it starts
(trainer.worker_probe, in a child process), refreshes its row while it lives, and marks it stopped on a warm
shutdown. Called from the Celery signals in config/celery.py, in the worker process only."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone

from trainer.capabilities import is_training_queue
from trainer.models import WorkerCapability

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 300
_registry: dict[str, WorkerRegistry] = {}


def worker_capability_record(
    *, name: str, queues: list[str], facts: dict, probe_error: str = "", now: datetime | None = None
) -> WorkerCapability:
    """Stores (or replaces) a worker's row from what its probe found."""
    now = now or timezone.now()
    cpu_processes = settings.TANDEM_WORKER_CPU_PROCESSES or int(facts.get("cpu_count") or os.cpu_count() or 1)
    row, _ = WorkerCapability.objects.update_or_create(
        name=name[:255],
        defaults={
            "queues": sorted(queues),
            "gpu_count": int(facts.get("gpu_count") or 0),
            "gpu_names": list(facts.get("gpu_names") or []),
            "cpu_processes": max(1, cpu_processes),
            "cuda": bool(facts.get("cuda")),
            "bf16": bool(facts.get("bf16")),
            "deepspeed": bool(facts.get("deepspeed")),
            "bitsandbytes": bool(facts.get("bitsandbytes")),
            "vllm": bool(facts.get("vllm")),
            "accelerate": bool(facts.get("accelerate")),
            "torch_version": str(facts.get("torch_version") or "")[:50],
            "probe_error": probe_error,
            "started_at": now,
            "last_seen_at": now,
            "stopped_at": None,
        },
    )
    return row


def worker_capability_seen(*, name: str) -> bool:
    """The worker is alive now; False when its row is gone (deleted by hand), so that it records itself again."""
    return bool(WorkerCapability.objects.filter(name=name[:255]).update(last_seen_at=timezone.now(), stopped_at=None))


def worker_capability_stopped(*, name: str) -> None:
    WorkerCapability.objects.filter(name=name[:255]).update(stopped_at=timezone.now())


def probe_capabilities(*, started: list[subprocess.Popen] | None = None) -> tuple[dict, str]:
    """(facts, error): trainer.worker_probe's answer from a child process (CUDA stays out of this one). The child
    is appended to `started`, so that a worker shutting down can end it."""
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "trainer.worker_probe"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=settings.BASE_DIR,
        )
    except OSError as exc:
        return {}, f"{type(exc).__name__}: {exc}"
    if started is not None:
        started.append(child)
    try:
        stdout, stderr = child.communicate(timeout=PROBE_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return {}, f"the probe took more than {PROBE_TIMEOUT_SECONDS} s"
    if child.returncode != 0:
        return {}, (stderr.strip().splitlines() or [f"exit status {child.returncode}"])[-1][:2000]
    try:
        return json.loads(stdout), ""
    except ValueError as exc:
        return {}, f"unreadable probe output: {exc}"


class WorkerRegistry(threading.Thread):
    """Probes once, records the row, then refreshes it every TANDEM_WORKER_SEEN_SECONDS until told to stop. A
    thread: a worker busy with a long run (solo pool) still shows as live."""

    def __init__(self, *, name: str, queues: list[str]):
        super().__init__(name=f"worker-registry-{name}", daemon=True)
        self.worker_name = name
        self.queues = queues
        self.interval = settings.TANDEM_WORKER_SEEN_SECONDS
        self.stopped = threading.Event()
        self.facts: dict = {}
        self.probe_error = ""
        self.probes: list[subprocess.Popen] = []

    def run(self) -> None:
        try:
            self.facts, self.probe_error = probe_capabilities(started=self.probes)
            if self.stopped.is_set():
                return
            if self.probe_error:
                logger.error("worker %s: capability probe failed: %s", self.worker_name, self.probe_error)
            self._record()
            while not self.stopped.wait(self.interval):
                try:
                    if not worker_capability_seen(name=self.worker_name):
                        self._record()
                except Exception:  # a missed refresh is a worker that looks older; the next one may work
                    logger.exception("worker %s: registry refresh failed", self.worker_name)
                    connection.close()
        except Exception:
            logger.exception("worker %s: registry failed", self.worker_name)
        finally:
            connection.close()

    def _record(self) -> None:
        row = worker_capability_record(
            name=self.worker_name, queues=self.queues, facts=self.facts, probe_error=self.probe_error
        )
        logger.info(
            "worker %s registered: %s GPU(s), cuda=%s, %s CPU processes, queues %s",
            row.name,
            row.gpu_count,
            row.cuda,
            row.cpu_processes,
            ",".join(row.queues),
        )

    def stop(self) -> None:
        self.stopped.set()
        for child in self.probes:
            if child.poll() is None:
                child.kill()
        self.join(timeout=5)


def worker_registry_start(*, name: str, queues: list[str]) -> WorkerRegistry | None:
    """Starts the registry thread of a worker that consumes a training queue (`gpu`, `gpu-N`); others have none."""
    if not any(is_training_queue(queue) for queue in queues) or name in _registry:
        return None
    registry = _registry[name] = WorkerRegistry(name=name, queues=list(queues))
    registry.start()
    return registry


def worker_registry_stop(*, name: str) -> None:
    registry = _registry.pop(name, None)
    if registry is None:
        return
    registry.stop()
    try:
        worker_capability_stopped(name=name)
    except Exception:
        logger.exception("worker %s: could not mark its row stopped", name)
    finally:
        connection.close()
