"""Bridges between transformers' Trainer loop and Tandem's progress callback."""

from __future__ import annotations

import copy
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from trainer.ml.checkpointing import (
    RESUME_DIRNAME,
    OnCheckpoint,
    intermediate_steps,
    step_folder,
    write_resume_marker,
)
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


class CheckpointSaver(TrainerCallback):
    """Saves a checkpoint after each optimizer step of `steps`, with Trainer's own machinery: on_step_end asks for a
    save, Trainer writes its checkpoint (weights, tokenizer, optimizer, scheduler, scaler, RNG and trainer state)
    into args.output_dir/checkpoint-N, and on_save moves it to <run output>/checkpoints/step-N.

    That folder loads with the Auto* classes. Without LoRA it is Trainer's folder itself (what
    `train(resume_from_checkpoint=)` reads); with LoRA it holds the merged weights and Trainer's folder (the adapter
    and the optimizer state) goes to its `resume/`. A step where the run was cancelled saves nothing (the progress
    reporter turns the save off), and `on_checkpoint` is called once the folder is complete.
    """

    def __init__(self, *, output_dir: Path, every: int | None, on_checkpoint: OnCheckpoint):
        self.output_dir = Path(output_dir)
        self.every = every
        self.steps: set[int] = set()
        self.on_checkpoint = on_checkpoint
        self.last_metrics: dict[str, float] = {}
        self.saved: list[Path] = []

    def on_train_begin(self, args, state, control, **kwargs):
        # max_steps is known once train() has sized the run (and, resuming, global_step is the checkpoint's).
        self.steps = intermediate_steps(state.max_steps, self.every, after=state.global_step)
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.steps:
            control.should_save = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.last_metrics = _flat_metrics(logs)
        return control

    def on_save(self, args, state, control, model=None, processing_class=None, **kwargs):
        step = state.global_step
        saved = Path(args.output_dir) / f"checkpoint-{step}"
        if step not in self.steps:
            return control
        if args.world_size > 1:  # several processes (trainer.launch): every rank has written its part; rank 0 moves
            import torch.distributed as dist

            dist.barrier()
            if not state.is_world_process_zero:
                return control
        if not saved.is_dir():
            return control
        target = step_folder(self.output_dir, step)
        if target.exists():  # left by an earlier attempt of this run that died while saving
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if (saved / "adapter_config.json").is_file():
            from peft import PeftModel

            target.mkdir()
            unwrapped = model
            while hasattr(unwrapped, "module") and not isinstance(unwrapped, PeftModel):
                unwrapped = unwrapped.module
            merged = copy.deepcopy(unwrapped).merge_and_unload()  # the live model keeps training its adapter
            merged.save_pretrained(target)
            del merged
            if processing_class is not None:
                processing_class.save_pretrained(target)
            os.replace(saved, target / RESUME_DIRNAME)
            write_resume_marker(target, fmt="hf-trainer", state_dir=RESUME_DIRNAME, step=step)
        else:
            os.replace(saved, target)
            write_resume_marker(target, fmt="hf-trainer", state_dir=".", step=step)
        self.saved.append(target)
        self.on_checkpoint(step=step, folder=target, metrics=dict(self.last_metrics))
        return control


def install_callbacks(trainer, progress: Progress) -> ProgressReporter:
    """Replace the default console callbacks by a quiet bar and add the progress reporter."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(QuietProgressBar)
    reporter = ProgressReporter(progress)
    trainer.add_callback(reporter)
    return reporter
