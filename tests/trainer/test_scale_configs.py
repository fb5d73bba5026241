"""The scale and memory fields of a run config (docs/SCALING.md): defaults that keep every run as it was, the
choices each field takes, and the rules no server could run otherwise."""

import pytest

from trainer.configs import (
    ATTN_IMPLEMENTATIONS,
    TRAINING_KINDS,
    ConfigError,
    config_check,
    defaults,
    parse_set_options,
    validate_config,
)

SCALE_DEFAULTS = {
    "num_processes": 1,
    "strategy": "ddp",
    "num_machines": 1,
    "machine_rank": 0,
    "main_process_ip": "",
    "main_process_port": 29500,
    "collective_timeout_seconds": 600,
    "gradient_checkpointing": False,
    "torch_dtype": "auto",
    "attn_implementation": "sdpa",
    "lora_target_modules": "all-linear",
    "load_in_4bit": False,
    "load_in_8bit": False,
}


def errors(kind: str, **values) -> dict[str, str]:
    return config_check(kind, {"base_model": "m", **values})[1]


@pytest.mark.parametrize("kind", TRAINING_KINDS)
def test_every_training_kind_has_the_scale_and_memory_fields_with_defaults_that_change_nothing(kind):
    assert {name: defaults(kind)[name] for name in SCALE_DEFAULTS} == SCALE_DEFAULTS
    assert errors(kind) == {}


def test_generate_has_a_backend_and_a_tensor_parallel_size():
    config = validate_config("generate", {"model": "m"})
    assert (config["backend"], config["tensor_parallel_size"]) == ("transformers", 1)
    assert "num_processes" not in config
    assert (
        validate_config("generate", {"model": "m", "backend": "vllm", "tensor_parallel_size": 4})["backend"] == "vllm"
    )
    assert config_check("generate", {"model": "m", "backend": "onnx"})[1] == {
        "backend": "Must be one of transformers, vllm; got 'onnx'."
    }
    assert config_check("generate", {"model": "m", "tensor_parallel_size": 2})[1] == {
        "tensor_parallel_size": "Only the vllm backend splits a model over GPUs; transformers uses one."
    }


def test_rloo_rollouts_have_the_sampling_backend_and_other_training_kinds_do_not():
    rloo = {"base_model": "m", "batch_size": 4, "eval_batch_size": 4}
    assert validate_config("rloo", rloo)["backend"] == "transformers"
    assert validate_config("rloo", {**rloo, "backend": "vllm", "num_processes": 4, "tensor_parallel_size": 2})
    assert config_check("rloo", {**rloo, "backend": "vllm", "num_processes": 3, "tensor_parallel_size": 2})[1] == {
        "tensor_parallel_size": "Must divide num_processes (3) for RLOO's rollouts."
    }
    assert config_check("rloo", {**rloo, "tensor_parallel_size": 2})[1] == {
        "tensor_parallel_size": "Only the vllm backend splits a model over GPUs; transformers uses one."
    }
    for kind in ("sft", "reward_model", "dpo", "ppo"):
        errors = config_check(kind, {"base_model": "m", "backend": "vllm"})[1]
        assert errors == {"backend": f"Unknown setting for {kind} runs (it is a rloo / generate setting)."}, kind


def test_choices_are_checked():
    assert errors("dpo", strategy="zero3", torch_dtype="bf16", attn_implementation="flash") == {
        "strategy": "Must be one of ddp, fsdp, deepspeed_zero2, deepspeed_zero3; got 'zero3'.",
        "torch_dtype": "Must be one of auto, bfloat16, float16, float32; got 'bf16'.",
        "attn_implementation": f"Must be one of {', '.join(ATTN_IMPLEMENTATIONS)}; got 'flash'.",
    }
    for attn in ATTN_IMPLEMENTATIONS:
        assert errors("reward_model", attn_implementation=attn) == {}


def test_sizes_are_bounded():
    assert errors("dpo", num_processes=0, num_machines=0, collective_timeout_seconds=1, main_process_port=70000) == {
        "num_processes": "Must be at least 1.",
        "num_machines": "Must be at least 1.",
        "collective_timeout_seconds": "Must be at least 10.",
        "main_process_port": "Must be at most 65535.",
    }


def test_lora_target_modules_take_all_linear_or_module_names():
    config = validate_config("sft", {"base_model": "m", "lora": True, "lora_target_modules": ["q_proj", "v_proj"]})
    assert config["lora_target_modules"] == ["q_proj", "v_proj"]
    assert errors("sft", lora=True, lora_target_modules=[]) == {
        "lora_target_modules": 'Must be "all-linear" or a list of 1 to 64 module names, got [].'
    }
    assert errors("sft", lora=True, lora_target_modules=["q_proj", "x; rm"]) == {
        "lora_target_modules": "Module names are letters, digits, '_' and '.'; got 'x; rm'."
    }
    assert errors("sft", lora_target_modules=["q_proj"]) == {
        "lora_target_modules": "Only LoRA runs have target modules: set lora=true."
    }
    # the --set form: names joined by commas
    parsed = parse_set_options(["lora_target_modules=q_proj, v_proj", "lora=true"], kind="dpo")
    assert validate_config("dpo", {"base_model": "m", **parsed})["lora_target_modules"] == ["q_proj", "v_proj"]


def test_quantized_loading_needs_lora_and_one_of_the_two():
    assert errors("dpo", load_in_4bit=True) == {
        "load_in_4bit": "Quantized weights cannot be trained themselves: set lora=true (QLoRA)."
    }
    assert errors("dpo", load_in_4bit=True, load_in_8bit=True, lora=True) == {
        "load_in_8bit": "Choose load_in_4bit or load_in_8bit, not both."
    }
    assert errors("dpo", load_in_8bit=True, lora=True, torch_dtype="float32") == {
        "load_in_8bit": "4-/8-bit loading computes in bfloat16 or float16: leave torch_dtype auto."
    }
    assert errors("reward_model", load_in_4bit=True, lora=True) == {}


def test_float16_weights_train_only_as_lora():
    assert "torch_dtype" in errors("sft", torch_dtype="float16")
    assert errors("sft", torch_dtype="float16", lora=True) == {}
    assert errors("sft", torch_dtype="bfloat16") == {}


def test_several_machines_need_machine_zeros_address_and_a_rank_below_their_count():
    assert errors("reward_model", num_machines=2, num_processes=8, machine_rank=2) == {
        "main_process_ip": "A run on several machines needs machine 0's address.",
        "machine_rank": "Must be below num_machines (2).",
    }
    assert errors("reward_model", num_machines=2, num_processes=8, machine_rank=1, main_process_ip="10.0.0.1") == {}
    assert errors("reward_model", main_process_ip="node-0.cluster") == {}
    assert errors("reward_model", main_process_ip="10.0.0.1; rm -rf /") == {
        "main_process_ip": "Must be a host name or an IP address."
    }


def test_a_sharding_strategy_on_one_process_is_refused():
    assert errors("dpo", strategy="fsdp") == {
        "strategy": "fsdp shards a model over several processes: set num_processes."
    }
    assert errors("dpo", strategy="deepspeed_zero3", num_processes=2) == {}


def test_ppo_takes_the_memory_options_but_not_quantized_weights():
    found = config_check(
        "ppo", {"base_model": "m", "gradient_checkpointing": True, "torch_dtype": "bfloat16", "lora": True,
                "lora_target_modules": ["q_proj"], "attn_implementation": "eager", "load_in_4bit": True},
    )[1]  # fmt: skip
    assert set(found) == {"load_in_4bit"}
    assert found["load_in_4bit"].startswith("PPO runs load full-precision weights")


def test_a_bad_config_raises_with_every_field():
    with pytest.raises(ConfigError) as refused:
        validate_config("dpo", {"base_model": "m", "strategy": "x", "num_processes": "two"})
    assert set(refused.value.errors) == {"strategy", "num_processes"}
