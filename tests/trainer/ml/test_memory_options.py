"""A run's memory options reach model loading (docs/SCALING.md): torch_dtype and attn_implementation through TRL's
model_init_kwargs to from_pretrained, gradient_checkpointing to the trainer, lora_target_modules to peft's LoraConfig.
On the tiny model, on this CPU: bfloat16 weights, eager attention and activation checkpointing train."""

import pytest
import torch
from datasets import Dataset

from trainer.configs import validate_config
from trainer.ml.common import lora_config, model_init_kwargs, precision_label, trainer_arguments
from trainer.ml.compute import compute_facts
from trainer.ml.devices import Device

# TRL 1.16 still calls transformers' pre-v6 names (is_gradient_checkpointing); nothing a run can act on.
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated and will be removed in v6.*:FutureWarning")
CPU = Device(type="cpu", dtype="float32", name="cpu")
GPU_BF16 = Device(type="cuda", dtype="bfloat16", name="a gpu")


def config(tiny_model_dir, **overrides) -> dict:
    return validate_config("reward_model", {"base_model": str(tiny_model_dir), "max_length": 64, **overrides})


def pairs() -> Dataset:
    rows = [{"chosen": f"a good answer {n}", "rejected": f"bad {n}"} for n in range(8)]
    return Dataset.from_list(rows)


def reward_trainer(tiny_model_dir, tmp_path, run_config: dict):
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    args = RewardConfig(
        **trainer_arguments(config=run_config, scratch_dir=tmp_path, device=CPU), max_length=run_config["max_length"]
    )
    return RewardTrainer(
        model=run_config["base_model"],
        args=args,
        train_dataset=pairs(),
        processing_class=AutoTokenizer.from_pretrained(run_config["base_model"]),
        peft_config=lora_config(config=run_config, task_type="SEQ_CLS"),
    )


def test_the_defaults_load_as_before(tiny_model_dir, tmp_path):
    run_config = config(tiny_model_dir)
    assert model_init_kwargs(config=run_config, device=CPU) == {"dtype": "float32", "attn_implementation": "sdpa"}
    arguments = trainer_arguments(config=run_config, scratch_dir=tmp_path, device=CPU)
    assert arguments["activation_checkpointing"] is False
    trainer = reward_trainer(tiny_model_dir, tmp_path, run_config)
    assert trainer.model.dtype == torch.float32
    assert trainer.model.config._attn_implementation == "sdpa"
    assert not trainer.model.is_activation_checkpointing


def test_bfloat16_eager_attention_and_gradient_checkpointing_reach_the_model_and_train(tiny_model_dir, tmp_path):
    run_config = config(
        tiny_model_dir, torch_dtype="bfloat16", attn_implementation="eager", gradient_checkpointing=True, max_steps=2,
        batch_size=4,
    )  # fmt: skip
    trainer = reward_trainer(tiny_model_dir, tmp_path, run_config)
    assert trainer.args.model_init_kwargs == {"dtype": "bfloat16", "attn_implementation": "eager"}
    assert trainer.model.dtype == torch.bfloat16
    assert trainer.model.config._attn_implementation == "eager"
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.model.is_activation_checkpointing
    assert trainer.state.global_step == 2
    moved = [name for name, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert moved  # it trained in bfloat16 on the CPU
    facts = compute_facts(config=run_config, device=CPU)
    assert facts["precision"] == "bfloat16 weights, no autocast" and facts["gradient_checkpointing"] is True


def test_lora_target_modules_reach_peft(tiny_model_dir, tmp_path):
    run_config = config(tiny_model_dir, lora=True, lora_target_modules=["q_proj", "v_proj"])
    assert set(lora_config(config=run_config, task_type="SEQ_CLS").target_modules) == {"q_proj", "v_proj"}
    trainer = reward_trainer(tiny_model_dir, tmp_path, run_config)
    adapted = {
        name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in trainer.model.named_parameters() if "lora_A" in name
    }
    assert adapted == {"q_proj", "v_proj"}
    assert lora_config(config=config(tiny_model_dir, lora=True), task_type="SEQ_CLS").target_modules == "all-linear"


def test_four_bit_loading_asks_for_nf4_with_the_devices_compute_dtype(tiny_model_dir):
    run_config = config(tiny_model_dir, lora=True, load_in_4bit=True)
    kwargs = model_init_kwargs(config=run_config, device=GPU_BF16)
    quantization = kwargs["quantization_config"]
    assert quantization.load_in_4bit and quantization.bnb_4bit_quant_type == "nf4"
    assert quantization.bnb_4bit_use_double_quant and quantization.bnb_4bit_compute_dtype == torch.bfloat16
    assert kwargs["dtype"] == "bfloat16"
    assert precision_label(config=run_config, device=GPU_BF16) == "nf4 4-bit weights, bfloat16 autocast"
    eight = model_init_kwargs(config=config(tiny_model_dir, lora=True, load_in_8bit=True), device=GPU_BF16)
    assert eight["quantization_config"].load_in_8bit


def test_a_worker_without_cuda_refuses_four_bit_and_vllm(tiny_model_dir):
    from trainer.configs import ConfigError

    with pytest.raises(ConfigError) as refused:
        compute_facts(config=config(tiny_model_dir, lora=True, load_in_4bit=True), device=CPU)
    assert refused.value.errors == {
        "load_in_4bit": "Needs bitsandbytes and a CUDA device, and this worker has not both."
    }
    with pytest.raises(ConfigError) as refused:
        compute_facts(config=validate_config("generate", {"model": "m", "backend": "vllm"}), device=CPU)
    assert set(refused.value.errors) == {"backend"}
    assert compute_facts(config=validate_config("generate", {"model": "m"}), device=CPU)["precision"] == "float32"
