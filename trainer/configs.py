"""Training run configurations: fields, defaults and validation per kind, without torch.

The web process validates a config before anything is queued (API, admin, `start_run`), so this module imports
nothing heavier than the standard library. The training functions in `trainer.ml` and `trainer.ppo` read the
validated dict it returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.errors import TandemError
from trainer.launch import (
    DEFAULT_COLLECTIVE_TIMEOUT_SECONDS,
    DEFAULT_MAIN_PROCESS_PORT,
    DEFAULT_NUM_PROCESSES,
    DEFAULT_STRATEGY,
    world_size,
)

KINDS = ("reward_model", "dpo", "ppo", "rloo", "generate", "sft")
# Kinds that train from a snapshot (every field of _COMMON applies); generate only samples.
TRAINING_KINDS = ("reward_model", "dpo", "ppo", "rloo", "sft")
# Kinds that optimise a policy and save checkpoints along the way (trainer.checkpoints).
POLICY_KINDS = frozenset({"dpo", "ppo", "rloo", "sft"})
# Kinds that train on a snapshot of demonstrations (rewards.models.DatasetSnapshot.Kind.SFT); the others train on
# preference pairs.
SFT_SNAPSHOT_KINDS = frozenset({"sft"})
# Online methods optimise a policy against a trained reward model: the run names a succeeded reward-model run.
NEEDS_REWARD_MODEL = frozenset({"ppo", "rloo"})

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}


class ConfigError(TandemError):
    """A config that cannot run. `.errors` maps each bad field (or "kind") to a message saying what is wrong."""

    status, code = 400, "invalid_config"

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        detail = "Invalid training config. " + " ".join(f"{field}: {msg}" for field, msg in self.errors.items())
        super().__init__(detail, errors=self.errors)


@dataclass(frozen=True)
class Field:
    name: str
    type: type
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False  # `min` itself is not allowed (learning rates, coefficients that must be > 0)
    nullable: bool = False
    required: bool = False
    model: bool = False  # names a model to load: confined by trainer.model_paths before the run is queued
    choices: tuple[str, ...] | None = None  # a str field's allowed values

    def check(self, value: Any) -> tuple[Any, str | None]:
        """The value as stored (ints widened to float for float fields), or an error message."""
        if value is None:
            if self.nullable:
                return None, None
            return None, "This field may not be null." if not self.required else "This field is required."
        # bool is an int in Python: an int field must not take True, a bool field must not take 1.
        if self.type is bool:
            if not isinstance(value, bool):
                return None, f"Must be a boolean (true or false), got {value!r}."
            return value, None
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer() and not isinstance(value, bool):
                    value = int(value)
                else:
                    return None, f"Must be an integer, got {value!r}."
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None, f"Must be a number, got {value!r}."
            value = float(value)
            if value != value or value in (float("inf"), float("-inf")):
                return None, "Must be a finite number."
        elif self.type is str:
            if not isinstance(value, str):
                return None, f"Must be a string, got {value!r}."
            value = value.strip()
            if self.required and not value:
                return None, "This field is required."
            if self.choices is not None and value not in self.choices:
                return None, f"Must be one of {', '.join(self.choices)}; got {value!r}."
            return value, None
        elif self.type is list:
            return _module_names(value)
        if self.min is not None and (value <= self.min if self.min_exclusive else value < self.min):
            return None, f"Must be {'greater than' if self.min_exclusive else 'at least'} {_fmt(self.min)}."
        if self.max is not None and value > self.max:
            return None, f"Must be at most {_fmt(self.max)}."
        return value, None


_MODULE_NAME = re.compile(r"[A-Za-z0-9_.]{1,100}")
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,252}|\[?[0-9A-Fa-f:.]{2,45}\]?")


def _module_names(value: Any) -> tuple[Any, str | None]:
    """lora_target_modules: "all-linear", or a non-empty list of module names (peft matches them as suffixes)."""
    if value == ALL_LINEAR:
        return value, None
    if isinstance(value, str):  # "q_proj,v_proj" from a --set line or a form
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or len(value) > 64:
        return None, f'Must be "{ALL_LINEAR}" or a list of 1 to 64 module names, got {value!r}.'
    bad = [name for name in value if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name)]
    if bad:
        return None, f"Module names are letters, digits, '_' and '.'; got {bad[0]!r}."
    return list(dict.fromkeys(value)), None


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(number)


def _f(name, type_, default, help_, **kw) -> Field:
    return Field(name=name, type=type_, default=default, help=help_, **kw)


_COMMON = [
    _f(
        "base_model",
        str,
        None,
        "The model to start from: run:ID (a succeeded run of this project), a folder under the model roots, or a "
        "hub id where the server allows them.",
        required=True,
        model=True,
    ),
    _f("learning_rate", float, 1e-5, "Peak learning rate (AdamW, linear decay).", min=0, min_exclusive=True, max=1),
    _f("epochs", int, 1, "Passes over the training split.", min=1, max=1000),
    _f("batch_size", int, 8, "Pairs (or prompts) per device per optimizer micro-step.", min=1, max=4096),
    _f("gradient_accumulation_steps", int, 1, "Micro-steps per optimizer step.", min=1, max=1024),
    _f("max_length", int, 1024, "Longest prompt + answer in tokens; longer pairs are dropped.", min=8, max=131072),
    _f("seed", int, 42, "Random seed (head initialisation, shuffling, sampling).", min=0, max=2**32 - 1),
    _f("lora", bool, False, "Train LoRA adapters through peft instead of every weight."),
    _f("lora_r", int, 16, "LoRA rank.", min=1, max=1024),
    _f("lora_alpha", int, 32, "LoRA scaling (alpha).", min=1, max=4096),
    _f(
        "max_steps",
        int,
        None,
        "Stop after this many optimizer steps (empty: run every epoch).",
        min=1,
        max=10**7,
        nullable=True,
    ),
    _f("eval_batch_size", int, 8, "Batch size on the validation split.", min=1, max=4096),
    _f("time_limit_seconds", int, 86400, "The run is stopped after this long.", min=1, max=30 * 86400),
]

# Scale and memory (docs/SCALING.md): how many processes on how many machines, the distributed strategy, and how
# the model is loaded. The defaults are what every run did before these fields: one process, fp32 weights with the
# device's mixed precision, sdpa attention, LoRA on every linear layer.
STRATEGIES = ("ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3")
DEEPSPEED_STRATEGIES = frozenset({"deepspeed_zero2", "deepspeed_zero3"})
TORCH_DTYPES = ("auto", "bfloat16", "float16", "float32")
ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flex_attention")
GENERATE_BACKENDS = ("transformers", "vllm")
ALL_LINEAR = "all-linear"

_SCALE = [
    _f(
        "num_processes",
        int,
        DEFAULT_NUM_PROCESSES,
        "Training processes on each machine (one per GPU; on a CPU-only worker, gloo processes). 1: the run trains "
        "in the worker's own process.",
        min=1,
        max=1024,
    ),
    _f(
        "strategy",
        str,
        DEFAULT_STRATEGY,
        "How the processes share the model: ddp, fsdp, deepspeed_zero2 or deepspeed_zero3.",
        choices=STRATEGIES,
    ),
    _f("num_machines", int, 1, "Machines the run spans (each launches num_processes).", min=1, max=1024),
    _f(
        "machine_rank",
        int,
        0,
        "This machine's rank (0 is the main one) when a launch is started on each node by hand.",
        min=0,
        max=1023,
    ),
    _f(
        "main_process_ip",
        str,
        "",
        "Address of machine 0, which the others reach (empty on one machine).",
    ),
    _f("main_process_port", int, DEFAULT_MAIN_PROCESS_PORT, "Port of the rendezvous on machine 0.", min=1, max=65535),
    _f(
        "collective_timeout_seconds",
        int,
        DEFAULT_COLLECTIVE_TIMEOUT_SECONDS,
        "A collective (all-reduce, barrier) that waits longer fails the run: a rank that died is not a hang.",
        min=10,
        max=86400,
    ),
]

_MEMORY = [
    _f("gradient_checkpointing", bool, False, "Recompute activations in the backward pass: less memory, ~20 % slower."),
    _f(
        "torch_dtype",
        str,
        "auto",
        "Weights' dtype at load: auto (float32 weights, the device's mixed precision), bfloat16, float16 or float32.",
        choices=TORCH_DTYPES,
    ),
    _f(
        "attn_implementation",
        str,
        "sdpa",
        "Attention kernel passed to from_pretrained: eager, sdpa, flash_attention_2 or flex_attention.",
        choices=ATTN_IMPLEMENTATIONS,
    ),
    _f(
        "lora_target_modules",
        list,
        ALL_LINEAR,
        'Modules LoRA adapts: "all-linear" or a list of module names (e.g. ["q_proj", "v_proj"]).',
    ),
    _f("load_in_4bit", bool, False, "QLoRA: load the base weights in 4-bit NF4 (bitsandbytes, CUDA; needs lora)."),
    _f("load_in_8bit", bool, False, "Load the base weights in 8-bit (bitsandbytes, CUDA; needs lora)."),
]

# Generate runs and RLOO's rollouts (TRL's use_vllm, colocated with the training processes) sample with these.
SAMPLING_KINDS = frozenset({"generate", "rloo"})
_SAMPLING = [
    _f(
        "backend",
        str,
        "transformers",
        "Sampling engine: transformers (any device) or vllm (CUDA with vLLM installed).",
        choices=GENERATE_BACKENDS,
    ),
    _f("tensor_parallel_size", int, 1, "GPUs one vLLM engine spans (vllm backend only).", min=1, max=64),
]

_CHECKPOINTS = [
    _f(
        "checkpoint_every",
        int,
        None,
        "Save a checkpoint every this many optimizer steps (empty: 4 evenly spaced, plus the final one).",
        min=1,
        max=10**7,
        nullable=True,
    ),
    _f(
        "keep_checkpoints",
        int,
        None,
        "Keep the files of only this many most recent intermediate checkpoints (empty: keep all).",
        min=1,
        max=10**4,
        nullable=True,
    ),
    _f(
        "resume_from",
        int,
        None,
        "Continue from this checkpoint id (a resumable one, of a run of the same kind and snapshot).",
        min=1,
        max=2**63 - 1,
        nullable=True,
    ),
]

_GENERATE = [
    _f(
        "model",
        str,
        None,
        "The model that writes the responses: checkpoint:ID, run:ID (its final checkpoint), a folder under the "
        "model roots, or a hub id where the server allows them.",
        required=True,
        model=True,
    ),
    _f("n", int, 1, "Responses per prompt.", min=1, max=64),
    _f("temperature", float, 0.7, "Sampling temperature (0: greedy).", min=0, max=10),
    _f(
        "top_p",
        float,
        1.0,
        "Nucleus sampling: keep the smallest set of tokens with this much probability.",
        min=0,
        min_exclusive=True,
        max=1,
    ),
    _f("max_new_tokens", int, 256, "Most tokens per response.", min=1, max=8192),
    _f("seed", int, 42, "Random seed of the sampling.", min=0, max=2**32 - 1),
    _f("batch_size", int, 8, "Prompts per generate call (left-padded).", min=1, max=4096),
    _f(
        "reward_model_run",
        int,
        None,
        "Score every response with this succeeded reward-model run of the project (empty: no score).",
        min=1,
        max=2**63 - 1,
        nullable=True,
    ),
    _f(
        "reference_model",
        str,
        None,
        "Measure the KL of the sampled tokens to this model (same forms as model; empty: no KL).",
        nullable=True,
        model=True,
    ),
    _f("time_limit_seconds", int, 86400, "The run is stopped after this long.", min=1, max=30 * 86400),
]

_BY_KIND: dict[str, list[Field]] = {
    "reward_model": [
        _f("learning_rate", float, 1e-5, "Peak learning rate (AdamW, linear decay).", min=0, min_exclusive=True, max=1),
        _f("use_margin", bool, False, "Use the pair's vote margin as RewardTrainer's margin in the loss."),
    ],
    "dpo": [
        _f("learning_rate", float, 1e-6, "Peak learning rate (AdamW, linear decay).", min=0, min_exclusive=True, max=1),
        _f(
            "beta",
            float,
            0.1,
            "DPO temperature: how far the policy may move from the reference.",
            min=0,
            min_exclusive=True,
            max=100,
        ),
    ],
    "ppo": [
        _f("learning_rate", float, 3e-6, "Peak learning rate (AdamW, linear decay).", min=0, min_exclusive=True, max=1),
        _f("init_kl_coef", float, 0.15, "Starting coefficient of the KL penalty to the reference.", min=0, max=100),
        _f("adaptive_kl", bool, True, "Adapt the KL coefficient towards target_kl (Ziegler et al. 2019)."),
        _f(
            "target_kl",
            float,
            6.0,
            "KL per response the adaptive controller aims at.",
            min=0,
            min_exclusive=True,
            max=1000,
        ),
        _f("kl_horizon", int, 10000, "Horizon of the adaptive KL controller, in samples.", min=1, max=10**9),
        _f("ppo_epochs", int, 4, "Optimisation passes over each rollout batch.", min=1, max=100),
        _f("clip_range", float, 0.2, "Policy ratio clipping (epsilon).", min=0, min_exclusive=True, max=10),
        _f("clip_range_value", float, 0.2, "Value function clipping.", min=0, min_exclusive=True, max=1000),
        _f("vf_coef", float, 0.1, "Weight of the value loss.", min=0, max=100),
        _f("gamma", float, 1.0, "Discount factor.", min=0, max=1),
        _f("lam", float, 0.95, "GAE lambda.", min=0, max=1),
        _f("response_length", int, 53, "Tokens generated per response (53 as in the TL;DR recipe).", min=1, max=8192),
        _f("temperature", float, 0.7, "Sampling temperature of rollouts.", min=0, min_exclusive=True, max=10),
        _f("rollout_batch_size", int, 64, "Prompts per rollout (one PPO update).", min=1, max=65536),
        _f("mini_batch_size", int, 16, "Rollouts per PPO minibatch; must divide rollout_batch_size.", min=1, max=65536),
        _f("whiten_rewards", bool, False, "Whiten rewards before computing advantages."),
        _f(
            "normalize_reward",
            bool,
            True,
            "Shift and scale reward-model scores to mean 0, std 1 on the initial policy's samples (the recipe's gain/bias).",
        ),
        _f(
            "missing_eos_penalty",
            float,
            None,
            "Subtracted from the score of a response that ends without EOS (empty: no penalty).",
            min=0,
            max=1000,
            nullable=True,
        ),
    ],
    "generate": _GENERATE,
    # Practice for SFT on a few thousand demonstrations: a learning rate of 1e-5 to 3e-5, 2 to 4 epochs.
    "sft": [
        _f("learning_rate", float, 2e-5, "Peak learning rate (AdamW, linear decay).", min=0, min_exclusive=True, max=1),
        _f("epochs", int, 3, "Passes over the training split.", min=1, max=1000),
        _f("batch_size", int, 8, "Demonstrations per device per optimizer micro-step.", min=1, max=4096),
        _f(
            "max_length",
            int,
            1024,
            "Longest conversation in tokens; longer ones are cut at the end (TRL keep_start), and one left with no "
            "answer token is dropped.",
            min=8,
            max=131072,
        ),
    ],
    "rloo": [
        _f("learning_rate", float, 1e-6, "Peak learning rate (AdamW, linear decay).", min=0, min_exclusive=True, max=1),
        _f(
            "num_generations", int, 2, "Completions per prompt (k); each is baselined by the other k-1.", min=2, max=256
        ),
        _f("kl_coef", float, 0.05, "KL coefficient to the reference (0 loads no reference).", min=0, max=100),
        _f("response_length", int, 53, "Tokens generated per completion.", min=1, max=8192),
    ],
}


# The sizes that multiply a run's work, each bounded per project (settings.TANDEM_RUN_LIMITS, trainer.models.
# ProjectRunLimits): steps, passes, batch and sequence sizes, generated tokens, samples per prompt, wall-clock time.
RUN_LIMIT_FIELDS = (
    "time_limit_seconds",
    "max_steps",
    "epochs",
    "batch_size",
    "eval_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "response_length",
    "rollout_batch_size",
    "mini_batch_size",
    "ppo_epochs",
    "num_generations",
    "lora_r",
)


def limit_errors(config: dict, limits: dict[str, int]) -> dict[str, str]:
    """The fields of a validated config over their limit, each with a message naming the limit."""
    errors = {}
    for name in RUN_LIMIT_FIELDS:
        value, limit = config.get(name), limits.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and limit is not None and value > limit:
            errors[name] = f"Must be at most {limit}: this project's run limit for {name} (a superuser can change it)."
    return errors


def hard_max(name: str) -> int:
    """The largest value any kind accepts for `name`: no limit may be set above it."""
    return max(int(spec[name].max) for spec in map(fields, KINDS) if name in spec and spec[name].max is not None)


def model_fields(kind: str) -> list[str]:
    """The fields of `kind` that name a model to load."""
    return [name for name, field in fields(kind).items() if field.model]


def fields(kind: str) -> dict[str, Field]:
    """The fields of one kind, common ones first, in a stable order (for forms and docs)."""
    if kind not in KINDS:
        raise ConfigError({"kind": _unknown_kind(kind)})
    if kind not in TRAINING_KINDS:
        return {field.name: field for field in [*_BY_KIND[kind], *_SAMPLING]}
    result = {field.name: field for field in _COMMON}
    result.update({field.name: field for field in _BY_KIND[kind]})
    if kind in POLICY_KINDS:
        result.update({field.name: field for field in _CHECKPOINTS})
    result.update({field.name: field for field in [*_SCALE, *_MEMORY]})
    if kind in SAMPLING_KINDS:
        result.update({field.name: field for field in _SAMPLING})
    return result


def defaults(kind: str) -> dict[str, Any]:
    return {name: field.default for name, field in fields(kind).items()}


def _unknown_kind(kind: object) -> str:
    return f"Unknown kind {kind!r}; expected one of {', '.join(KINDS)}."


def validate_config(kind: str, values: dict) -> dict:
    """The complete config for `kind` (defaults filled in), or ConfigError listing every problem at once."""
    config, errors = config_check(kind, values)
    if errors:
        raise ConfigError(errors)
    return config


def config_check(kind: str, values: dict) -> tuple[dict, dict[str, str]]:
    """(the config with defaults filled in and None for every bad field, every problem by field) without raising:
    run_start goes on to check what is valid (models, limits) so that one answer lists everything."""
    if kind not in KINDS:
        return {}, {"kind": _unknown_kind(kind)}
    if not isinstance(values, dict):
        return {}, {"config": f"Must be an object of settings, got {type(values).__name__}."}
    spec = fields(kind)
    errors: dict[str, str] = {}
    for key in values:
        if key not in spec:
            other = [k for k in KINDS if k != kind and key in fields(k)]
            hint = f" (it is a {' / '.join(other)} setting)" if other else ""
            errors[str(key)] = f"Unknown setting for {kind} runs{hint}."
    config: dict[str, Any] = {}
    for name, field in spec.items():
        if name not in values:
            if field.required:
                errors[name] = "This field is required."
            config[name] = field.default
            continue
        value, message = field.check(values[name])
        if message:
            errors[name] = message
        config[name] = value
    for name, message in _cross_field_errors(kind, config).items():
        errors.setdefault(name, message)
    return config, errors


def _cross_field_errors(kind: str, config: dict) -> dict[str, str]:
    """Rules between fields, each checked only when every field it reads is valid (a bad field reads None)."""

    def valid(*names: str) -> bool:
        return all(config.get(name) is not None for name in names)

    errors = _scale_errors(kind, config, valid)
    if kind == "generate" and valid("n", "temperature") and config["n"] > 1 and config["temperature"] == 0:
        errors["n"] = "Greedy sampling (temperature 0) writes one response per prompt: set n to 1, or a temperature."
    if kind == "ppo" and valid("max_length", "response_length") and config["max_length"] <= config["response_length"]:
        errors["max_length"] = (
            f"Must be greater than response_length ({config['response_length']}): the prompt needs room too."
        )
    if (
        kind == "ppo"
        and valid("rollout_batch_size", "mini_batch_size")
        and config["rollout_batch_size"] % config["mini_batch_size"]
    ):
        errors["mini_batch_size"] = (
            f"Must divide rollout_batch_size ({config['rollout_batch_size']}); got {config['mini_batch_size']}."
        )
    processes = world_size(config)
    per_step = f" x {processes} processes" if processes > 1 else ""
    if kind == "rloo" and valid("batch_size", "gradient_accumulation_steps", "num_generations"):
        # TRL groups the k completions of a prompt inside one generation batch: batch_size x accumulation x the
        # processes of every machine (RLOOConfig's generation_batch_size).
        generation_batch = config["batch_size"] * config["gradient_accumulation_steps"] * processes
        if generation_batch % config["num_generations"]:
            errors["num_generations"] = (
                f"Must divide batch_size x gradient_accumulation_steps{per_step} ({generation_batch}); "
                f"got {config['num_generations']}."
            )
    if (
        kind == "rloo"
        and valid("eval_batch_size", "num_generations")
        and (config["eval_batch_size"] * processes) % config["num_generations"]
    ):
        errors["eval_batch_size"] = (
            f"eval_batch_size{per_step} must be a multiple of num_generations ({config['num_generations']})."
        )
    return errors


def _scale_errors(kind: str, config: dict, valid) -> dict[str, str]:
    """Scale and memory rules that need no worker: what no server could run as asked."""
    errors: dict[str, str] = {}
    if (
        kind in SAMPLING_KINDS
        and valid("backend", "tensor_parallel_size")
        and config["backend"] != "vllm"
        and config["tensor_parallel_size"] > 1
    ):
        errors["tensor_parallel_size"] = "Only the vllm backend splits a model over GPUs; transformers uses one."
    if (
        kind == "rloo"
        and valid("backend", "tensor_parallel_size", "num_processes")
        and config["backend"] == "vllm"
        and config["num_processes"] % config["tensor_parallel_size"]
    ):
        # TRL's colocated engine: the training processes of a machine form groups of tensor_parallel_size.
        errors["tensor_parallel_size"] = f"Must divide num_processes ({config['num_processes']}) for RLOO's rollouts."
    if kind == "generate":
        return errors
    quantized = [name for name in ("load_in_4bit", "load_in_8bit") if config.get(name)]
    if len(quantized) == 2:
        errors["load_in_8bit"] = "Choose load_in_4bit or load_in_8bit, not both."
    elif quantized and valid("lora") and not config["lora"]:
        errors[quantized[0]] = "Quantized weights cannot be trained themselves: set lora=true (QLoRA)."
    if quantized and valid("torch_dtype") and config["torch_dtype"] == "float32":
        errors.setdefault(quantized[0], "4-/8-bit loading computes in bfloat16 or float16: leave torch_dtype auto.")
    if valid("torch_dtype", "lora") and config["torch_dtype"] == "float16" and not config["lora"]:
        errors["torch_dtype"] = (
            "float16 weights cannot be the optimizer's own (the gradient scaler refuses fp16 parameters): use "
            "bfloat16, or float16 with lora=true."
        )
    if valid("lora_target_modules", "lora") and config["lora_target_modules"] != ALL_LINEAR and not config["lora"]:
        errors["lora_target_modules"] = "Only LoRA runs have target modules: set lora=true."
    if valid("num_machines", "main_process_ip") and config["num_machines"] > 1 and not config["main_process_ip"]:
        errors["main_process_ip"] = "A run on several machines needs machine 0's address."
    if valid("main_process_ip") and config["main_process_ip"] and not _HOST.fullmatch(config["main_process_ip"]):
        errors["main_process_ip"] = "Must be a host name or an IP address."
    if valid("num_machines", "machine_rank") and config["machine_rank"] >= config["num_machines"]:
        errors["machine_rank"] = f"Must be below num_machines ({config['num_machines']})."
    if valid("strategy", "num_processes", "num_machines") and config["strategy"] != "ddp" and world_size(config) == 1:
        errors["strategy"] = f"{config['strategy']} shards a model over several processes: set num_processes."
    if kind == "ppo":
        for name in ("load_in_4bit", "load_in_8bit"):
            if config.get(name):
                errors[name] = (
                    "PPO runs load full-precision weights (trainer.ppo places the policy, its value head and the "
                    "reference itself); use torch_dtype bfloat16 and lora to save memory."
                )
    return errors


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NULL = {"none", "null", ""}


def _field_anywhere(name: str, kind: str | None) -> Field | None:
    for candidate in (kind,) if kind else KINDS:
        spec = fields(candidate)
        if name in spec:
            return spec[name]
    return None


def parse_set_options(options: Iterable[str], *, kind: str | None = None) -> dict:
    """`["lora=true", "beta=0.2", "max_steps=none"]` -> `{"lora": True, "beta": 0.2, "max_steps": None}`.

    Each value is typed by its field (looked up in `kind`, or in any kind when none is given); ranges are left to
    validate_config. Raises ConfigError naming every option it cannot read.
    """
    result, errors = set_options_check(options, kind=kind)
    if errors:
        raise ConfigError(errors)
    return result


def set_options_check(options: Iterable[str], *, kind: str | None = None) -> tuple[dict, dict[str, str]]:
    """(the options that could be read, a message for each one that could not): parse_set_options without raising,
    so that the admin form and start_run report these with every other problem of the run at once."""
    result: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for option in options:
        key, sep, raw = option.partition("=")
        key = key.strip()
        if not sep or not key:
            errors[option] = "Expected key=value."
            continue
        field = _field_anywhere(key, kind)
        if field is None:
            errors[key] = f"Unknown setting{f' for {kind} runs' if kind else ''}."
            continue
        raw = raw.strip()
        try:
            result[key] = _parse_value(field, raw)
        except ValueError:
            errors[key] = f"Expected {_TYPE_NAMES[field.type]}, got {raw!r}."
    return result, errors


def _parse_value(field: Field, raw: str) -> Any:
    if field.type is str:
        return raw
    if field.type is list:  # "q_proj,v_proj" or all-linear; checked by the field
        return raw if raw == ALL_LINEAR else [part.strip() for part in raw.split(",") if part.strip()]
    if raw.lower() in _NULL:
        if field.nullable:
            return None
        raise ValueError(raw)
    if field.type is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(raw)
    if field.type is int:
        return int(raw.replace("_", ""))
    return float(raw)
