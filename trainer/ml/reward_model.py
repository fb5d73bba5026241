"""Reward model training with TRL's RewardTrainer, and its evaluation with a length-hacking monitor.

Evaluation on the validation split: accuracy (chosen scored above rejected), the same on pairs where the chosen
answer is the shorter one, and the Spearman correlation of reward with answer length; beside it, a baseline that
always prefers the longer answer, and the pairwise gain over it (mean and spread). A reward model no better than that
baseline, or one whose accuracy collapses on shorter-chosen pairs, has learned length rather than quality:
trainer.flags reads these figures and says so on the run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.progress import Progress


def train_reward_model(
    *, config: dict, train_file: Path, validation_file: Path, output_dir: Path, progress: Progress
) -> dict:
    """Train, save output_dir/checkpoint (AutoModelForSequenceClassification, num_labels=1), return the evaluation."""
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from trainer.ml.callbacks import install_callbacks
    from trainer.ml.common import (
        dataset_cache,
        eval_metrics,
        lora_config,
        quiet_libraries,
        release_accelerator_memory,
        save_checkpoint,
        trainer_arguments,
    )
    from trainer.ml.data import load_split
    from trainer.ml.devices import pick_device

    quiet_libraries()
    output_dir = Path(output_dir)
    device = pick_device()
    with dataset_cache() as cache:
        train = _margin_column(load_split(train_file, cache_dir=cache), use_margin=config["use_margin"])
        validation = load_split(validation_file, cache_dir=cache)
        validation = _margin_column(validation, use_margin=config["use_margin"])
        validation = validation.add_column("pair_index", list(range(len(validation))))
        tokenizer = AutoTokenizer.from_pretrained(config["base_model"])
        args = RewardConfig(
            **trainer_arguments(config=config, scratch_dir=cache, device=device),
            max_length=config["max_length"],
        )
        trainer = RewardTrainer(
            model=config["base_model"],
            args=args,
            train_dataset=train,
            eval_dataset=validation if len(validation) else None,
            processing_class=tokenizer,
            peft_config=lora_config(config=config, task_type="SEQ_CLS"),
        )
        reporter = install_callbacks(trainer, progress)
        trainer.train()
        reporter.raise_if_cancelled()

        chosen, rejected, kept = (
            _score_pairs(trainer, trainer.eval_dataset, batch_size=config["eval_batch_size"])
            if len(validation)
            else (np.zeros(0), np.zeros(0), [])
        )
        chosen_len = np.array([_length(validation[i]["chosen"]) for i in kept], dtype=float)
        rejected_len = np.array([_length(validation[i]["rejected"]) for i in kept], dtype=float)
        evaluation = evaluate_rewards(
            chosen_rewards=chosen, rejected_rewards=rejected, chosen_lengths=chosen_len, rejected_lengths=rejected_len
        )
        evaluation["n_validation_dropped_too_long"] = len(validation) - len(kept)
        evaluation["device"] = f"{device.type}/{device.dtype}"
        save_checkpoint(trainer, output_dir)
        step, total = trainer.state.global_step, trainer.state.max_steps
    del trainer
    release_accelerator_memory()
    progress(step=step, total=total, metrics=eval_metrics(evaluation))
    return evaluation


def _margin_column(dataset, *, use_margin: bool):
    """RewardTrainer subtracts a `margin` column from the reward gap whenever one is present: keep it only on request."""
    if not use_margin:
        return dataset.remove_columns([c for c in ("margin",) if c in dataset.column_names])
    if "margin" not in dataset.column_names:
        raise ValueError("use_margin is set but the dataset has no margin column.")
    return dataset.map(lambda row: {"margin": float(row["margin"] or 0.0)})


def _length(answer) -> int:
    from trainer.ml.data import answer_text

    return len(answer_text(answer))


def _score_pairs(trainer, dataset, *, batch_size: int):
    """Rewards of every (tokenized, length-filtered) validation pair, with the pairs' original indices."""
    import torch

    from trainer.ml.common import forward_batches

    model = trainer.model
    model.eval()
    chosen, rejected, kept = [], [], []
    with torch.no_grad():
        for rows, _batch, logits in forward_batches(
            trainer, model, dataset, batch_size=batch_size, columns=("chosen_ids", "rejected_ids")
        ):
            scores = logits.squeeze(-1).float().cpu().numpy()
            n = len(rows["chosen_ids"])
            chosen.extend(scores[:n])
            rejected.extend(scores[n:])
            kept.extend(rows["pair_index"])
    return np.array(chosen, dtype=float), np.array(rejected, dtype=float), kept


def _pair_accuracy(chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """1 when chosen scores higher, 0 when lower, 1/2 on a tie (a coin flip would score 1/2)."""
    return np.where(chosen > rejected, 1.0, np.where(chosen < rejected, 0.0, 0.5))


def evaluate_rewards(
    *,
    chosen_rewards: np.ndarray,
    rejected_rewards: np.ndarray,
    chosen_lengths: np.ndarray,
    rejected_lengths: np.ndarray,
) -> dict:
    """The reward model's evaluation beside the "prefer the longer answer" baseline (lengths in characters).

    Undefined figures (no pairs; no shorter-chosen pair; constant rewards for Spearman) are None.
    """
    from scipy.stats import spearmanr

    from trainer.ml.common import finite_or_none

    n_pairs = len(chosen_rewards)
    shorter = chosen_lengths < rejected_lengths
    model_acc = _pair_accuracy(chosen_rewards, rejected_rewards)
    baseline_acc = _pair_accuracy(chosen_lengths, rejected_lengths)

    def mean(values: np.ndarray) -> float | None:
        return finite_or_none(values.mean()) if len(values) else None

    # Per pair, the reward model's score minus the baseline's (each 1, 1/2 or 0): its mean is the accuracy gain over
    # the baseline, and with its spread trainer.flags puts a paired interval on that gain.
    gain = model_acc - baseline_acc
    rewards = np.concatenate([chosen_rewards, rejected_rewards])
    lengths = np.concatenate([chosen_lengths, rejected_lengths])
    if n_pairs and np.ptp(rewards) > 0 and np.ptp(lengths) > 0:
        rho = finite_or_none(spearmanr(rewards, lengths).statistic)
    else:
        rho = None
    return {
        "accuracy": mean(model_acc),
        "accuracy_shorter_chosen": mean(model_acc[shorter]),
        "reward_length_spearman": rho,
        "baseline_longer_accuracy": mean(baseline_acc),
        "baseline_longer_accuracy_shorter_chosen": mean(baseline_acc[shorter]),
        "accuracy_gain_over_longer": mean(gain),
        "accuracy_gain_over_longer_sd": finite_or_none(gain.std(ddof=1)) if n_pairs > 1 else None,
        "n_model_beats_longer": int((gain > 0).sum()),
        "n_longer_beats_model": int((gain < 0).sum()),
        "n_pairs": int(n_pairs),
        "n_shorter_chosen": int(shorter.sum()),
        "reward_chosen_mean": mean(chosen_rewards),
        "reward_rejected_mean": mean(rejected_rewards),
        "reward_margin_mean": mean(chosen_rewards - rejected_rewards),
    }
