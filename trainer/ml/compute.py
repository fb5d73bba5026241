"""What a run actually trains with, as the worker finds it at start: processes, machines, devices, strategy and
precision (TrainingRun.compute, the run page and lineage). Also the last check of the options that need this
worker's hardware: a run that reached a worker which cannot honour them fails with the reason, never silently
trains differently (run_start refuses them earlier when the registry knows better: trainer.capabilities)."""

from __future__ import annotations

from trainer.configs import ConfigError
from trainer.ml.devices import Device


def compute_facts(*, config: dict, device: Device) -> dict:
    """The facts of today's in-process path: one process on this worker's device. Raises ConfigError for an option
    this worker cannot honour."""
    from trainer.ml.common import precision_label
    from trainer.worker_probe import importable

    errors = {}
    if config.get("backend") == "vllm" and (device.type != "cuda" or not importable("vllm")):
        errors["backend"] = "Needs vLLM and a CUDA device, and this worker has not both."
    for name in ("load_in_4bit", "load_in_8bit"):
        if config.get(name) and (device.type != "cuda" or not importable("bitsandbytes")):
            errors[name] = "Needs bitsandbytes and a CUDA device, and this worker has not both."
    if errors:
        raise ConfigError(errors)
    facts = {
        "processes": 1,
        "machines": 1,
        "device_count": 1,
        "device_type": device.type,
        "strategy": "single process",
        "precision": precision_label(config=config, device=device) if "torch_dtype" in config else device.dtype,
    }
    if config.get("attn_implementation"):
        facts["attn_implementation"] = config["attn_implementation"]
    if "gradient_checkpointing" in config:
        facts["gradient_checkpointing"] = bool(config["gradient_checkpointing"])
    return facts
