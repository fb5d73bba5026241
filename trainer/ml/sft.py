"""Supervised fine-tuning with TRL's SFTTrainer on an SFT snapshot's demonstrations, loss on the assistant's tokens.

Rows are TRL's conversational format (`messages`, the assistant's answer last). The loss covers the assistant's turns
only: SFTConfig(assistant_only_loss=True), which asks the chat template for the assistant's tokens through its
`{% generation %}` markers (the tiny model's template has them; TRL swaps in a training template for the families it
knows, and refuses a template it cannot mark). That keeps every assistant turn of a multi-turn conversation in the
loss and the rows as the snapshot wrote them, where completion_only_loss would need prompt/completion rows rebuilt
from the messages and would train on the last turn only.

Evaluation: the mean negative log-likelihood per assistant token on the validation split, and its exponential (the
perplexity), of the base model (measured before the first step) and of the result, on the same tokenized split.
Token-weighted over the whole split, so a short last batch weighs what its tokens weigh.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.ml.checkpointing import OnCheckpoint, no_checkpoints
from trainer.progress import Progress

if TYPE_CHECKING:
    from datasets import Dataset

ROLES = frozenset({"system", "user", "assistant"})


class DemonstrationFormatError(ValueError):
    """A file that is not an SFT snapshot split (conversational rows, the assistant's answer last)."""


def load_demonstrations(path: Path) -> Dataset:
    """One split's conversations as a `datasets.Dataset` with a single `messages` column (the snapshot's bookkeeping
    columns, item_id, source, batch..., stay out of the trainer). Every line is checked; the first bad one is named."""
    from datasets import Dataset

    path = Path(path)
    if not path.is_file():
        raise DemonstrationFormatError(f"{path} does not exist.")
    conversations = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                messages = json.loads(line).get("messages")
            except (json.JSONDecodeError, AttributeError) as exc:
                raise DemonstrationFormatError(f"{path.name} line {number}: not a JSON object ({exc}).") from exc
            problem = _messages_problem(messages)
            if problem:
                raise DemonstrationFormatError(f"{path.name} line {number}: {problem}")
            conversations.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return Dataset.from_dict({"messages": conversations})


def _messages_problem(messages) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "no messages (TRL conversational format expected)."
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            return "each message needs a role (system, user or assistant) and a text content."
    if messages[-1]["role"] != "assistant":
        return "the last message is not the assistant's answer."
    return None


def sft_arguments(*, config: dict, scratch_dir: Path, device) -> dict:
    """SFTConfig's keyword arguments for a run config: the shared trainer arguments plus SFT's own."""
    from trainer.ml.common import trainer_arguments

    return {
        **trainer_arguments(config=config, scratch_dir=scratch_dir, device=device),
        "max_length": config["max_length"],
        "assistant_only_loss": True,
        "packing": False,
    }


def train_sft(
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

    Checkpoints along the run and `resume_from` work as for DPO (trainer.ml.common.checkpointing, train_resuming)."""
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

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
    )
    from trainer.ml.devices import pick_device

    quiet_libraries()
    output_dir = Path(output_dir)
    device = pick_device()
    train = load_demonstrations(train_file)
    validation = load_demonstrations(validation_file)
    if not len(train):
        raise DemonstrationFormatError(f"{Path(train_file).name} holds no demonstrations to train on.")
    with dataset_cache() as cache:
        tokenizer = AutoTokenizer.from_pretrained(config["base_model"])
        args = SFTConfig(**sft_arguments(config=config, scratch_dir=cache, device=device))
        trainer = SFTTrainer(
            model=config["base_model"],
            args=args,
            train_dataset=train,
            eval_dataset=validation if len(validation) else None,
            processing_class=tokenizer,
            peft_config=lora_config(config=config, task_type="CAUSAL_LM"),
        )
        reporter = install_callbacks(trainer, progress)
        checkpointing(trainer, config=config, output_dir=output_dir, on_checkpoint=on_checkpoint)
        eval_rows = trainer.eval_dataset if len(validation) else None
        # Before the first step the model is the base model (a fresh LoRA adapter changes nothing: its B is zero;
        # a resumed run loads its checkpoint inside train()).
        base = assistant_token_loss(trainer, eval_rows, batch_size=config["eval_batch_size"])
        train_resuming(trainer, resume_from=resume_from, output_dir=output_dir)
        reporter.raise_if_cancelled()
        result = assistant_token_loss(trainer, eval_rows, batch_size=config["eval_batch_size"])

        def perplexity(loss: float | None) -> float | None:
            return finite_or_none(math.exp(loss)) if loss is not None and loss < 700 else None

        kept = len(eval_rows) if eval_rows is not None else 0
        evaluation = {
            "validation_loss": result.mean,
            "validation_perplexity": perplexity(result.mean),
            "base_validation_loss": base.mean,
            "base_validation_perplexity": perplexity(base.mean),
            "validation_loss_change": (
                finite_or_none(result.mean - base.mean) if None not in (result.mean, base.mean) else None
            ),
            "n_validation_examples": kept,
            "n_validation_tokens": result.tokens,
            "n_validation_dropped": len(validation) - kept,
            "n_train_examples": len(trainer.train_dataset),
            "n_train_dropped": len(train) - len(trainer.train_dataset),
            "device": f"{device.type}/{device.dtype}",
        }
        save_checkpoint(trainer, output_dir)
        step, total = trainer.state.global_step, trainer.state.max_steps
    del trainer
    release_accelerator_memory()
    progress(step=step, total=total, metrics=eval_metrics(evaluation))
    return evaluation


class TokenLoss:
    """Summed negative log-likelihood over the assistant's tokens of a split, and how many tokens it covers."""

    def __init__(self, total: float = 0.0, tokens: int = 0):
        self.total, self.tokens = total, tokens

    @property
    def mean(self) -> float | None:
        from trainer.ml.common import finite_or_none

        return finite_or_none(self.total / self.tokens) if self.tokens else None


def assistant_token_loss(trainer, dataset, *, batch_size: int) -> TokenLoss:
    """The model's NLL on the labelled (assistant) tokens of a split SFTTrainer tokenized (`input_ids`, `labels`
    with -100 elsewhere), each token predicted from the ones before it, summed in float32."""
    import torch

    from trainer.ml.common import forward_batches

    if dataset is None or not len(dataset):
        return TokenLoss()
    model = trainer.accelerator.unwrap_model(trainer.model)
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for _rows, batch, logits in forward_batches(
            trainer, model, dataset, batch_size=batch_size, columns=("input_ids", "labels")
        ):
            logits = logits[:, :-1].float()
            targets = batch["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="sum"
            )
            total += float(losses)
            tokens += int((targets != -100).sum())
    if was_training:
        model.train()
    return TokenLoss(total, tokens)
