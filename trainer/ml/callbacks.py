"""Bridges between transformers' Trainer loop and Tandem's progress callback."""

from __future__ import annotations

import math
from collections.abc import Callable

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from trainer.progress import Progress, RunCancelled

# Keys Trainer adds to every log that are bookkeeping, not metrics worth a chart.
_SKIP = {"epoch", "total_flos", "step"}


def _flat_metrics(logs: dict) -> dict[str, float]:
    metrics = {}
    for key, value in logs.items():
        if key in _SKIP or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            metrics[key.replace("/", "_")] = float(value)
    return metrics


class ProgressReporter(TrainerCallback):
    """Calls `progress` after every optimizer step with that step's logged metrics (loss, learning rate, accuracy...).

    Trainer logs every step (`logging_steps=1`), so `on_log` sees each step's metrics. A RunCancelled raised by
    `progress` asks Trainer to stop at this step; the training function re-raises it once `train()` has returned
    (`raise_if_cancelled`), so the run stops cleanly and the run layer still sees why.
    """

    def __init__(self, progress: Progress, *, rename: Callable[[str], str] | None = None):
        self.progress = progress
        self.rename = rename or (lambda key: key)
        self.cancelled: RunCancelled | None = None
        self.calls = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.cancelled is not None or not logs or "loss" not in logs:  # eval and end-of-training summaries
            return control
        metrics = {self.rename(key): value for key, value in _flat_metrics(logs).items()}
        try:
            self.progress(step=state.global_step, total=state.max_steps, metrics=metrics)
        except RunCancelled as exc:
            self.cancelled = exc
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False
        self.calls += 1
        return control

    def raise_if_cancelled(self) -> None:
        if self.cancelled is not None:
            raise self.cancelled


class QuietProgressBar(ProgressCallback):
    """tqdm bar in the worker log without the dict Trainer prints at every logging step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return None


def install_callbacks(trainer, progress: Progress) -> ProgressReporter:
    """Replace the default console callbacks by a quiet bar and add the progress reporter."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(QuietProgressBar)
    reporter = ProgressReporter(progress)
    trainer.add_callback(reporter)
    return reporter
