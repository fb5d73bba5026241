"""Which live worker could run a config, and on which queue: the checks run_start makes before queueing.

Pure rules over the workers' registry rows (trainer.models.WorkerCapability, read by trainer.selectors.
workers_live): no torch, no queries. docs/SCALING.md describes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol

from core.errors import TandemError
from trainer.configs import DEEPSPEED_STRATEGIES, ConfigError
from trainer.launch import num_processes

GPU_QUEUE = "gpu"
_SIZED_QUEUE = re.compile(r"gpu-(\d+)")


class NoCapableWorker(ConfigError):
    """No live worker can run the config as asked: refused before queueing (400), the reason per field."""

    status, code = 400, "no_capable_worker"

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        detail = "No live worker can run this. " + " ".join(f"{field}: {msg}" for field, msg in self.errors.items())
        TandemError.__init__(self, detail, errors=self.errors)


class Worker(Protocol):
    name: str
    queues: list[str]
    gpu_count: int
    cpu_processes: int
    cuda: bool
    deepspeed: bool
    bitsandbytes: bool
    vllm: bool

    @property
    def process_capacity(self) -> int: ...


def _requirements(kind: str, config: dict) -> list[tuple[str, str, Callable[[Worker], bool]]]:
    """(field, what it needs, the test a worker passes) for each need of the config beyond the defaults."""
    needs: list[tuple[str, str, Callable[[Worker], bool]]] = []
    if config.get("backend") == "vllm":  # generate runs and RLOO's rollouts
        needs.append(("backend", "vLLM and a CUDA device", lambda w: w.vllm and w.cuda))
        size = config.get("tensor_parallel_size") or 1
        if size > 1:
            needs.append(("tensor_parallel_size", f"{size} GPUs", lambda w: w.gpu_count >= size))
    if kind == "generate":
        return needs
    if config.get("strategy") in DEEPSPEED_STRATEGIES:
        needs.append(("strategy", "DeepSpeed installed", lambda w: w.deepspeed))
    for name in ("load_in_4bit", "load_in_8bit"):
        if config.get(name):
            needs.append((name, "bitsandbytes and a CUDA device", lambda w: w.bitsandbytes and w.cuda))
    processes = num_processes(config)
    if processes > 1:
        needs.append(
            ("num_processes", f"{processes} processes on one machine", lambda w: w.process_capacity >= processes)
        )
    return needs


def capability_errors(*, kind: str, config: dict, workers: Sequence[Worker]) -> dict[str, str]:
    """Why no live worker can run `config`, by field; empty when one can, or when no worker is live (a worker may
    still come: the run waits in its queue as before). Requirements are applied in turn, so a combination no one
    worker offers (DeepSpeed here, 4 GPUs there) is named too."""
    if not workers:
        return {}
    candidates = list(workers)
    for field, need, test in _requirements(kind, config):
        passing = [worker for worker in candidates if test(worker)]
        if not passing:
            scope = "no live worker" if len(candidates) == len(workers) else "no live worker that meets the rest"
            return {field: f"Needs {need}, and {scope} has it ({_offer(candidates)})."}
        candidates = passing
    return {}


def _offer(workers: Sequence[Worker]) -> str:
    shown = [
        f"{w.name}: {w.gpu_count} GPU{'s' if w.gpu_count != 1 else ''}"
        + ("" if w.gpu_count else f", {w.cpu_processes} CPU processes")
        + "".join(f", {lib}" for lib in ("deepspeed", "bitsandbytes", "vllm") if getattr(w, lib))
        for w in list(workers)[:5]
    ]
    more = f" and {len(workers) - 5} more" if len(workers) > 5 else ""
    return "; ".join(shown) + more


def run_queue(*, config: dict, workers: Sequence[Worker]) -> str:
    """The queue a run goes to: `gpu` for one process; for n processes the smallest `gpu-k` (k >= n) that a live
    worker consumes, else `gpu` (a worker started with `-Q gpu,gpu-4` takes runs of 2 to 4 processes first)."""
    processes = num_processes(config)
    if processes <= 1:
        return GPU_QUEUE
    sizes = sorted(
        {
            int(match.group(1))
            for worker in workers
            for queue in worker.queues
            if (match := _SIZED_QUEUE.fullmatch(str(queue))) and int(match.group(1)) >= processes
        }
    )
    return f"gpu-{sizes[0]}" if sizes else GPU_QUEUE


def is_training_queue(name: str) -> bool:
    return name == GPU_QUEUE or bool(_SIZED_QUEUE.fullmatch(name))
