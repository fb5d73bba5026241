"""Which device and precision a run trains with: CUDA with bf16 where the GPU has it, else fp16 or fp32, else CPU."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    type: str  # "cuda" | "cpu"
    dtype: str  # "bfloat16" | "float16" | "float32": the autocast precision; weights stay fp32 (mixed precision)
    name: str

    @property
    def label(self) -> str:
        """How a run's `device` names it: "cuda bfloat16 (NVIDIA H100 80GB HBM3)"."""
        return f"{self.type} {self.dtype} ({self.name})"

    @property
    def bf16(self) -> bool:
        return self.dtype == "bfloat16"

    @property
    def fp16(self) -> bool:
        return self.dtype == "float16"

    def training_arguments(self) -> dict:
        """The device and precision fields of a transformers/TRL training config.

        TRL's configs default `bf16` to True, which fails on a CPU or a pre-Ampere GPU: always pass it explicitly.
        """
        return {"use_cpu": self.type == "cpu", "bf16": self.bf16, "fp16": self.fp16}


# fp16 autocast needs tensor cores to pay for its loss scaling: Volta (compute capability 7.0) and later.
_FP16_MIN_CAPABILITY = (7, 0)


def pick_device() -> Device:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        if torch.cuda.is_bf16_supported():
            return Device(type="cuda", dtype="bfloat16", name=name)
        if torch.cuda.get_device_capability(0) >= _FP16_MIN_CAPABILITY:
            return Device(type="cuda", dtype="float16", name=name)
        return Device(type="cuda", dtype="float32", name=name)
    return Device(type="cpu", dtype="float32", name="cpu")
