"""DPO with TRL's DPOTrainer against a frozen reference (the base model), evaluated pair by pair on validation.

The implicit reward of an answer is beta x (log pi(answer | prompt) - log pi_ref(answer | prompt)). TRL logs the
mean of per-batch means; the evaluation here scores every validation pair, so a short last batch weighs what its
pairs weigh.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainer.ml.checkpointing import OnCheckpoint, no_checkpoints
from trainer.progress import Progress

if TYPE_CHECKING:
    import torch


def train_dpo(
    *,
    config: dict,
    train_file: Path,
    validation_file: Path,
    output_dir: Path,
    progress: Progress,
    on_checkpoint: OnCheckpoint = no_checkpoints,
    resume_from: Path | None = None,
) -> dict:
    """Train, save output_dir/checkpoint (a causal LM + tokenizer), return the validation evaluation.

    Intermediate checkpoints go to output_dir/checkpoints/step-N at the config's checkpoint steps, each reported to
    `on_checkpoint`; `resume_from` (a resumable checkpoint folder) continues its weights, optimizer and step."""
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from trainer.ml.callbacks import install_callbacks
    from trainer.ml.common import (
        checkpointing,
        dataset_cache,
        eval_metrics,
        finite_or_none,
        lora_config,
        quiet_libraries,
        release_accelerator_memory,
        save_checkpoint,
        train_resuming,
        trainer_arguments,
    )
    from trainer.ml.data import load_split
    from trainer.ml.devices import pick_device

    quiet_libraries()
    output_dir = Path(output_dir)
    device = pick_device()
    with dataset_cache() as cache:
        train = load_split(train_file, cache_dir=cache)
        validation = load_split(validation_file, cache_dir=cache)
        tokenizer = AutoTokenizer.from_pretrained(config["base_model"])
        args = DPOConfig(
            **trainer_arguments(config=config, scratch_dir=cache, device=device),
            beta=config["beta"],
            max_length=config["max_length"],
        )
        # With ref_model=None TRL loads a second copy of the base model as the frozen reference (or, with LoRA,
        # disables the adapter to get the base model back).
        trainer = DPOTrainer(
            model=config["base_model"],
            ref_model=None,
            args=args,
            train_dataset=train,
            eval_dataset=validation if len(validation) else None,
            processing_class=tokenizer,
            peft_config=lora_config(config=config, task_type="CAUSAL_LM"),
        )
        reporter = install_callbacks(trainer, progress)
        checkpointing(trainer, config=config, output_dir=output_dir, on_checkpoint=on_checkpoint)
        train_resuming(trainer, resume_from=resume_from, output_dir=output_dir)
        reporter.raise_if_cancelled()

        if len(validation):
            chosen, rejected = implicit_rewards(trainer, trainer.eval_dataset, batch_size=config["eval_batch_size"])
        else:
            chosen = rejected = np.zeros(0)
        margins = chosen - rejected

        def mean(values: np.ndarray) -> float | None:
            return finite_or_none(values.mean()) if len(values) else None

        evaluation = {
            "reward_accuracy": mean(np.where(margins > 0, 1.0, np.where(margins < 0, 0.0, 0.5))),
            "reward_margin_mean": mean(margins),
            "chosen_reward_mean": mean(chosen),
            "rejected_reward_mean": mean(rejected),
            "n_pairs": len(chosen),
            "n_validation_dropped_too_long": len(validation) - len(chosen),
            "beta": config["beta"],
            "device": f"{device.type}/{device.dtype}",
        }
        save_checkpoint(trainer, output_dir)
        step, total = trainer.state.global_step, trainer.state.max_steps
    del trainer
    release_accelerator_memory()
    progress(step=step, total=total, metrics=eval_metrics(evaluation))
    return evaluation


def _completion_logps(model, batch) -> torch.Tensor:
    """Sum of log-probabilities of each sequence's completion tokens (the prompt and the padding masked out)."""
    import torch

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    targets = batch["input_ids"][:, 1:]
    token_logps = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (token_logps * batch["completion_mask"][:, 1:]).sum(dim=1)


def implicit_rewards(trainer, dataset, *, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """beta x log-ratio to the reference of each pair's chosen and rejected answer, on a TRL-tokenized split."""
    import contextlib

    import torch
    from peft import PeftModel

    model = trainer.accelerator.unwrap_model(trainer.model)
    model.eval()
    columns = ("prompt_ids", "chosen_ids", "rejected_ids")
    chosen, rejected = [], []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            rows = dataset[start : start + batch_size]
            examples = [
                dict(zip(columns, values, strict=True)) for values in zip(*(rows[c] for c in columns), strict=True)
            ]
            batch = trainer._prepare_inputs(trainer.data_collator(examples))
            with trainer.autocast_smart_context_manager():
                policy = _completion_logps(model, batch)
                if trainer.ref_model is not None:
                    reference = _completion_logps(trainer.ref_model, batch)
                else:
                    adapter_off = model.disable_adapter() if isinstance(model, PeftModel) else contextlib.nullcontext()
                    with adapter_off:
                        reference = _completion_logps(model, batch)
            rewards = (trainer.beta * (policy - reference)).float().cpu().numpy()
            n = len(examples)
            chosen.extend(rewards[:n])
            rejected.extend(rewards[n:])
    return np.array(chosen, dtype=float), np.array(rejected, dtype=float)
