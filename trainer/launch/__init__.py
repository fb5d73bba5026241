"""Multi-process runs: a run with num_processes > 1 is trained by a child process group that `accelerate launch`
starts (one process per device, torch.distributed underneath), supervised by the worker that claimed the run.

- config.py: the Accelerate config written per run (runs/<id>/accelerate_config.yaml, and in lineage).
- entry.py: what every rank runs (`python -m trainer.launch.entry --run-id N`); only rank 0 reports.
- supervisor.py: the worker side: start the group, watch cancel / time limit / heartbeat / rank deaths, end it;
  and `join`, the other machines' side of a run on several (`manage.py join_run`).

Every training kind (SFT, reward model, DPO, PPO, RLOO) goes through it; generate runs sample in one process (a vLLM
engine spans GPUs itself: tensor_parallel_size). Django-light on import: the web process never imports the
submodules; the worker imports them for multi-process runs only (trainer.services.execute).
"""

DEFAULT_NUM_PROCESSES = 1
DEFAULT_STRATEGY = "ddp"
DEFAULT_COLLECTIVE_TIMEOUT_SECONDS = 600
DEFAULT_MAIN_PROCESS_PORT = 29500  # torchrun's own default
# (trainer.configs' fields take these defaults: a run stored before a field existed reads the same value here.)


def num_processes(config: dict | None) -> int:
    """The run's process count: the config field when there is one, else 1 (the in-process path)."""
    value = (config or {}).get("num_processes") or DEFAULT_NUM_PROCESSES
    return int(value)


def num_machines(config: dict | None) -> int:
    return int((config or {}).get("num_machines") or 1)


def world_size(config: dict | None) -> int:
    """Processes of the whole run: num_processes on each of num_machines. Above 1, the run is launched (not trained
    in the worker's own process)."""
    return num_processes(config) * num_machines(config)


def strategy(config: dict | None) -> str:
    return str((config or {}).get("strategy") or DEFAULT_STRATEGY)


def collective_timeout_seconds(config: dict | None) -> int:
    return int((config or {}).get("collective_timeout_seconds") or DEFAULT_COLLECTIVE_TIMEOUT_SECONDS)
