"""The progress callback every training function calls, and the exception that stops a run (torch-free)."""

from __future__ import annotations

from typing import Protocol


class RunCancelled(Exception):
    """Raised by a progress callback to stop training at the current step: a cancel was asked or time ran out.

    Training functions let it propagate untouched; the run layer catches it and records why the run stopped.
    """

    def __init__(self, reason: str = "cancelled"):
        super().__init__(reason)
        self.reason = reason


class Progress(Protocol):
    """Called after every optimizer step, and once at the end with the evaluation metrics (prefixed "eval_")."""

    def __call__(self, *, step: int, total: int, metrics: dict[str, float]) -> None: ...


def null_progress(*, step: int, total: int, metrics: dict[str, float]) -> None:
    """A Progress that records nothing (scripts and benches that only want the checkpoint)."""
