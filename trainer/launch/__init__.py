"""Multi-process runs: a run with num_processes > 1 is trained by a child process group that `accelerate launch`
starts (one process per device, torch.distributed underneath), supervised by the worker that claimed the run.

- config.py: the Accelerate config written per run (runs/<id>/accelerate_config.yaml, and in lineage).
- entry.py: what every rank runs (`python -m trainer.launch.entry --run-id N`); only rank 0 reports.
- supervisor.py: the worker side: start the group, watch cancel / time limit / heartbeat / rank deaths, end it.

Django-light on import: the web process never imports this package; the worker imports it for multi-process runs
only (trainer.services.execute).
"""

DEFAULT_NUM_PROCESSES = 1
DEFAULT_STRATEGY = "ddp"
DEFAULT_COLLECTIVE_TIMEOUT_SECONDS = 600
# The kinds trained through this path today; the others are refused before queueing (trainer.launch.refusal).
MULTIPROCESS_KINDS = frozenset({"reward_model", "dpo", "ppo"})


def num_processes(config: dict | None) -> int:
    """The run's process count: the config field when there is one, else 1 (the in-process path)."""
    value = (config or {}).get("num_processes") or DEFAULT_NUM_PROCESSES
    return int(value)


def strategy(config: dict | None) -> str:
    return str((config or {}).get("strategy") or DEFAULT_STRATEGY)


def collective_timeout_seconds(config: dict | None) -> int:
    return int((config or {}).get("collective_timeout_seconds") or DEFAULT_COLLECTIVE_TIMEOUT_SECONDS)


def multiprocess_refusal(*, kind: str, config: dict | None) -> str | None:
    """Why a run of `kind` with this config cannot run on several processes yet, or None."""
    if num_processes(config) > 1 and kind not in MULTIPROCESS_KINDS:
        allowed = ", ".join(sorted(MULTIPROCESS_KINDS))
        return f"{kind} runs use one process for now; num_processes above 1 is available for {allowed} runs."
    return None
