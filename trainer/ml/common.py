"""What the reward-model, DPO and RLOO runs share: TRL arguments from a run config, LoRA, quiet logs, saving."""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

from trainer.ml.devices import Device

CHECKPOINT_DIRNAME = "checkpoint"


def quiet_libraries() -> None:
    """Warnings and errors only from transformers/datasets; the worker log keeps Trainer's tqdm bar."""
    import warnings

    import datasets
    import transformers

    # TRL 1.16 still calls transformers' pre-v6 names (is_gradient_checkpointing); nothing a run can act on.
    warnings.filterwarnings("ignore", message=r".*is deprecated and will be removed in v6.*", category=FutureWarning)
    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


@contextlib.contextmanager
def dataset_cache() -> Iterator[Path]:
    """A private cache for datasets' Arrow files: nothing lands in the home directory, nothing outlives the run."""
    with tempfile.TemporaryDirectory(prefix="tandem-datasets-") as directory:
        yield Path(directory)


def trainer_arguments(*, config: dict, scratch_dir: Path, device: Device) -> dict:
    """Keyword arguments common to RewardConfig, DPOConfig and RLOOConfig for one run.

    Trainer writes nothing to `scratch_dir`; it only needs a folder (policy runs point it at their checkpoints).
    """
    return {
        "output_dir": str(Path(scratch_dir) / "trainer"),
        "num_train_epochs": config["epochs"],
        "max_steps": config["max_steps"] or -1,
        "per_device_train_batch_size": config["batch_size"],
        "per_device_eval_batch_size": config["eval_batch_size"],
        "gradient_accumulation_steps": config["gradient_accumulation_steps"],
        "learning_rate": config["learning_rate"],
        "seed": config["seed"],
        "data_seed": config["seed"],
        # Every step is logged so the progress callback sees each step's loss; the run layer stores the metrics.
        "logging_strategy": "steps",
        "logging_steps": 1,
        "eval_strategy": "no",
        # The final checkpoint is saved once, by us, in output_dir/checkpoint; policy runs' intermediate ones are asked
        # for by trainer.ml.callbacks.CheckpointSaver at their scheduled steps (see `checkpointing`).
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": False,
        "log_level": "error",
        # TRL turns gradient (activation) checkpointing on by default; it trades ~20 % speed for memory small models
        # do not need, so it is the run's `gradient_checkpointing` field (off by default). transformers 5 names it
        # activation_checkpointing; the old name only warns.
        "activation_checkpointing": bool(config.get("gradient_checkpointing", False)),
        # How TRL loads the model named by a string (dtype, attention kernel, 4-/8-bit): docs/SCALING.md.
        "model_init_kwargs": model_init_kwargs(config=config, device=device),
        "dataloader_num_workers": 0,
        **device.training_arguments(),
    }


def model_init_kwargs(*, config: dict, device: Device) -> dict:
    """from_pretrained's keyword arguments for a run's memory options: `dtype` (auto keeps float32 weights, with
    the device's mixed precision on top, as every run did before the field), `attn_implementation`, and a
    bitsandbytes `quantization_config` for load_in_4bit (QLoRA: NF4, double quantization) or load_in_8bit."""
    torch_dtype = config.get("torch_dtype") or "auto"
    kwargs: dict = {
        "dtype": "float32" if torch_dtype == "auto" else torch_dtype,
        "attn_implementation": config.get("attn_implementation") or "sdpa",
    }
    if config.get("load_in_4bit") or config.get("load_in_8bit"):
        import torch
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if device.dtype == "bfloat16" else torch.float16
        if config.get("load_in_4bit"):
            quantization = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute,
            )
        else:
            quantization = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["quantization_config"] = quantization
        kwargs["dtype"] = "bfloat16" if compute is torch.bfloat16 else "float16"
    return kwargs


def precision_label(*, config: dict, device: Device) -> str:
    """The precision a run trains with, as the run page and lineage show it: the weights' dtype as loaded and the
    autocast on top ("float32 weights, bfloat16 autocast"; "nf4 4-bit weights, ..." for QLoRA)."""
    if config.get("load_in_4bit"):
        weights = "nf4 4-bit"
    elif config.get("load_in_8bit"):
        weights = "int8"
    else:
        weights = model_init_kwargs(config=config, device=device)["dtype"]
    autocast = device.dtype if device.dtype != "float32" else "no"
    return f"{weights} weights, {autocast} autocast"


def checkpointing(trainer, *, config: dict, output_dir: Path, on_checkpoint):
    """Policy runs: save a checkpoint at the run's checkpoint steps (trainer.ml.checkpointing). Trainer writes its
    own checkpoint folders under <run output>/checkpoints/.trainer (same filesystem: they are moved, not copied)."""
    from trainer.ml.callbacks import CheckpointSaver
    from trainer.ml.checkpointing import CHECKPOINTS_DIRNAME

    trainer.args.output_dir = str(Path(output_dir) / CHECKPOINTS_DIRNAME / ".trainer")
    saver = CheckpointSaver(output_dir=output_dir, every=config.get("checkpoint_every"), on_checkpoint=on_checkpoint)
    trainer.add_callback(saver)
    return saver


def train_resuming(trainer, *, resume_from: Path | None, output_dir: Path) -> None:
    """trainer.train(), from a resumable checkpoint's weights, optimizer, scheduler, RNG and step when one is named;
    Trainer's scratch folder is removed afterwards (every checkpoint in it was moved out)."""
    import shutil

    from trainer.ml.checkpointing import CHECKPOINTS_DIRNAME, resume_state_dir

    state = str(resume_state_dir(resume_from)) if resume_from is not None else None
    try:
        trainer.train(resume_from_checkpoint=state)
    finally:
        shutil.rmtree(Path(output_dir) / CHECKPOINTS_DIRNAME / ".trainer", ignore_errors=True)


def lora_config(*, config: dict, task_type: str):
    """peft LoRA on the run's `lora_target_modules` (every linear layer, `all-linear`, by default), or None when the
    run trains all weights."""
    if not config["lora"]:
        return None
    from peft import LoraConfig

    return LoraConfig(
        task_type=task_type,
        r=config["lora_r"],
        lora_alpha=config["lora_alpha"],
        lora_dropout=0.0,
        target_modules=config.get("lora_target_modules") or "all-linear",
    )


def save_checkpoint(trainer, output_dir: Path) -> Path:
    """Model + tokenizer in output_dir/checkpoint, as plain `save_pretrained` folders.

    LoRA adapters are merged into the base weights first, so PPO, RLOO and anyone else load the checkpoint with the
    ordinary Auto* classes and never need peft or the base model.
    """
    from accelerate.utils import DistributedType
    from peft import PeftModel

    accelerator = trainer.accelerator
    checkpoint = Path(output_dir) / CHECKPOINT_DIRNAME
    # A sharded model (FSDP, DeepSpeed ZeRO) is gathered by every rank together: rank 0 gets the full state dict.
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    state_dict = accelerator.get_state_dict(trainer.model) if sharded else None
    if not accelerator.is_main_process:  # several processes (trainer.launch): rank 0 saves the weights
        return checkpoint
    checkpoint.mkdir(parents=True, exist_ok=True)
    model = accelerator.unwrap_model(trainer.model)
    if isinstance(model, PeftModel):
        model = _merged(model, state_dict) if state_dict is not None else model.merge_and_unload()
        state_dict = None
    model.save_pretrained(checkpoint, state_dict=state_dict)
    trainer.processing_class.save_pretrained(checkpoint)
    return checkpoint


def _merged(model, state_dict: dict):
    """A sharded LoRA model's merged weights: the gathered state dict loaded into a full copy on the CPU (rank 0's
    own copy holds only its shard), then merged as merge_and_unload merges an unsharded one."""
    from peft import get_peft_model

    base = model.get_base_model()
    copy = get_peft_model(type(base)._from_config(base.config), model.peft_config["default"])
    copy.load_state_dict(state_dict)
    return copy.merge_and_unload()


def release_accelerator_memory() -> None:
    """Hand the GPU memory a finished run's trainer held (its last reference deleted) back to the device."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def eval_metrics(evaluation: dict) -> dict[str, float]:
    """A run's evaluation as the metrics of its last progress call: the finite numbers, as eval_<key> (flags, text,
    None and non-finite values left out)."""
    return {
        f"eval_{key}": float(value)
        for key, value in evaluation.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }


def forward_batches(trainer, model, dataset, *, batch_size: int, columns: tuple[str, ...]):
    """A tokenized split through `model` as the trainer feeds it: `batch_size` rows at a time, their `columns`
    collated by the trainer's collator and put on its device, the forward pass under its autocast. Yields (rows,
    batch, logits); the caller holds torch.no_grad() around the loop."""
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start : start + batch_size]
        examples = [dict(zip(columns, values, strict=True)) for values in zip(*(rows[c] for c in columns), strict=True)]
        batch = trainer._prepare_inputs(trainer.data_collator(examples))
        with trainer.autocast_smart_context_manager():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        yield rows, batch, logits


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: undefined statistics (a constant input, no pairs) are stored as null."""
    value = float(value)
    return value if math.isfinite(value) else None
