"""Device choice: bf16 on GPUs that have it, fp16 on older tensor-core GPUs, fp32 below that, CPU without CUDA."""

import pytest
import torch

from trainer.ml.devices import pick_device


@pytest.mark.parametrize(
    ("bf16", "capability", "dtype", "arguments"),
    [
        (True, (8, 0), "bfloat16", {"use_cpu": False, "bf16": True, "fp16": False}),
        (False, (7, 5), "float16", {"use_cpu": False, "bf16": False, "fp16": True}),
        (False, (6, 1), "float32", {"use_cpu": False, "bf16": False, "fp16": False}),
    ],
)
def test_cuda_precision_by_capability(monkeypatch, bf16, capability, dtype, arguments):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
    device = pick_device()
    assert (device.type, device.dtype, device.name) == ("cuda", dtype, "Fake GPU")
    assert device.training_arguments() == arguments


def test_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device = pick_device()
    assert (device.type, device.dtype) == ("cpu", "float32")
    # TRL defaults bf16 to True; on the CPU it must be turned off explicitly.
    assert device.training_arguments() == {"use_cpu": True, "bf16": False, "fp16": False}
