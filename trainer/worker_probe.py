"""What this machine offers training runs, as one JSON object on stdout: `python -m trainer.worker_probe`.

A worker runs it in a child process when it starts (trainer.services.workers): the worker's own process never
touches CUDA before its pool forks, and a library that fails to import (bitsandbytes without a GPU, a broken
DeepSpeed) fails here, not in the worker. No Django.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

OPTIONAL_LIBRARIES = ("deepspeed", "bitsandbytes", "vllm", "accelerate")


def importable(name: str) -> bool:
    """True when `import name` works (not only when the package is installed)."""
    try:
        importlib.import_module(name)
    except Exception:  # ImportError, and what a library raises at import without its device (RuntimeError, OSError)
        return False
    return True


def probe() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    gpu_count = torch.cuda.device_count() if cuda else 0
    facts = {
        "torch_version": torch.__version__,
        "cuda": cuda,
        "gpu_count": gpu_count,
        "gpu_names": [torch.cuda.get_device_name(i) for i in range(gpu_count)],
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "cpu_count": os.cpu_count() or 1,
    }
    for name in OPTIONAL_LIBRARIES:
        facts[name] = importable(name)
    return facts


if __name__ == "__main__":
    json.dump(probe(), sys.stdout)
