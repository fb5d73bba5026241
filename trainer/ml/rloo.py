"""RLOO with TRL's RLOOTrainer: the policy samples k answers per snapshot prompt, a trained reward model scores them.

Each answer's advantage is its reward minus the mean of the other k-1 answers to the same prompt (REINFORCE
leave-one-out), with a KL penalty to the frozen base model (`kl_coef`, TRL's `beta`). The prompts are the snapshot's,
each once; the evaluation generates for the validation prompts before and after training and reports the reward
model's mean score of each.
"""

from __future__ import annotations

from pathlib import Path

from trainer.ml.checkpointing import OnCheckpoint, no_checkpoints
from trainer.progress import Progress


def train_rloo(
    *,
    config: dict,
    train_file: Path,
    validation_file: Path,
    reward_model_dir: Path,
    output_dir: Path,
    progress: Progress,
    on_checkpoint: OnCheckpoint = no_checkpoints,
    resume_from: Path | None = None,
) -> dict:
    """Train, save output_dir/checkpoint (a causal LM + tokenizer), return the evaluation.

    Intermediate checkpoints and resuming as in trainer.ml.dpo.train_dpo.

    `reward_model_dir` is a reward-model run's output folder: its `checkpoint/` is loaded as
    AutoModelForSequenceClassification (num_labels=1) with its own tokenizer.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RLOOConfig, RLOOTrainer

    from trainer.ml.callbacks import install_callbacks
    from trainer.ml.common import (
        CHECKPOINT_DIRNAME,
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
    from trainer.ml.data import load_split, unique_prompts
    from trainer.ml.devices import pick_device

    quiet_libraries()
    output_dir = Path(output_dir)
    reward_checkpoint = Path(reward_model_dir) / CHECKPOINT_DIRNAME
    if not (reward_checkpoint / "config.json").is_file():
        raise FileNotFoundError(f"No reward model checkpoint in {reward_checkpoint}.")
    device = pick_device()
    with dataset_cache() as cache:
        tokenizer = AutoTokenizer.from_pretrained(config["base_model"])
        prompt_budget = config["max_length"] - config["response_length"]
        train = _fitting(unique_prompts(load_split(train_file, cache_dir=cache)), tokenizer, prompt_budget)
        validation = _fitting(unique_prompts(load_split(validation_file, cache_dir=cache)), tokenizer, prompt_budget)
        if not len(train):
            raise ValueError(f"No training prompt fits max_length - response_length = {prompt_budget} tokens.")
        reward_model = AutoModelForSequenceClassification.from_pretrained(reward_checkpoint, num_labels=1)
        reward_tokenizer = AutoTokenizer.from_pretrained(reward_checkpoint)
        args = RLOOConfig(
            **trainer_arguments(config=config, scratch_dir=cache, device=device),
            num_generations=config["num_generations"],
            max_completion_length=config["response_length"],
            beta=config["kl_coef"],
            shuffle_dataset=True,
            # backend vllm: TRL samples the rollouts with a vLLM engine inside the training processes (colocate),
            # its weights synced from the policy at each step (docs/SCALING.md).
            use_vllm=config.get("backend") == "vllm",
            vllm_mode="colocate",
            vllm_tensor_parallel_size=config.get("tensor_parallel_size") or 1,
        )
        trainer = RLOOTrainer(
            model=config["base_model"],
            reward_funcs=reward_model,
            args=args,
            train_dataset=train,
            eval_dataset=validation if len(validation) else None,
            processing_class=tokenizer,
            reward_processing_classes=reward_tokenizer,
            peft_config=lora_config(config=config, task_type="CAUSAL_LM"),
        )
        reporter = install_callbacks(trainer, progress)
        checkpointing(trainer, config=config, output_dir=output_dir, on_checkpoint=on_checkpoint)
        before = trainer.evaluate() if len(validation) else {}
        train_resuming(trainer, resume_from=resume_from, output_dir=output_dir)
        reporter.raise_if_cancelled()
        after = trainer.evaluate() if len(validation) else {}

        def get(metrics: dict, key: str) -> float | None:
            value = metrics.get(f"eval_{key}")
            return None if value is None else finite_or_none(value)

        evaluation = {
            "reward_mean": get(after, "reward"),
            "reward_std": get(after, "reward_std"),
            "initial_reward_mean": get(before, "reward"),
            "reward_gain": (
                get(after, "reward") - get(before, "reward")
                if get(after, "reward") is not None and get(before, "reward") is not None
                else None
            ),
            "kl": get(after, "kl"),
            "completion_length_mean": get(after, "completions/mean_length"),
            "n_prompts": len(validation),
            "n_train_prompts": len(train),
            "num_generations": config["num_generations"],
            "device": f"{device.type}/{device.dtype}",
        }
        save_checkpoint(trainer, output_dir)
        step, total = trainer.state.global_step, trainer.state.max_steps
    del trainer, reward_model
    release_accelerator_memory()
    progress(step=step, total=total, metrics=eval_metrics(evaluation))
    return evaluation


def _fitting(prompts, tokenizer, budget: int):
    """Prompts whose tokens leave room for the response within max_length."""
    from trl.data_utils import is_conversational

    def length(row) -> int:
        if is_conversational(row):
            ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True)
            return len(ids["input_ids"] if isinstance(ids, dict) else ids)
        return len(tokenizer(row["prompt"])["input_ids"])

    return prompts.filter(lambda row: length(row) <= budget)
