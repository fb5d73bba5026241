"""train_ppo end to end on the CPU: a fine-tuned tiny policy, a reward model that likes " poem", a snapshot's files.

The behaviour the issue asks for: PPO raises the mean reward while the KL penalty keeps the policy near its
reference. The margins were measured over seeds 0-4 (reward 0.008-0.015 -> 0.116-0.136, final KL 1.9-2.9; without
the penalty the same runs reach KL 32-44), and the seed is fixed so the run is the same every time.
"""

import itertools
import json
import math
import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from trainer.configs import ConfigError
from trainer.ppo import train_ppo
from trainer.progress import RunCancelled

SUBJECTS = ["the model", "a reviewer", "the answer", "my friend", "the assistant", "our team", "the user", "a cat"]
VERBS = ["explains", "writes", "prefers", "checks", "describes", "answers", "lists", "rejects"]
STEP_METRICS = {
    "reward_mean",
    "kl",
    "entropy",
    "response_length",
    "clip_fraction",
    "value_clip_fraction",
    "policy_loss",
    "value_loss",
    "beta",
    "approx_kl",
}


@pytest.fixture(scope="module")
def snapshot_files(tmp_path_factory):
    """train/validation JSONL in the export's preference format; the prompts are sentence openings."""
    prompts = [f"{s} {v}".capitalize() for s, v in itertools.product(SUBJECTS, VERBS)]
    random.Random(0).shuffle(prompts)
    folder = tmp_path_factory.mktemp("snapshot")
    files = {}
    for split, chunk in (("train", prompts[:48]), ("validation", prompts[48:])):
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text(
            "".join(json.dumps({"prompt": p, "chosen": " a poem.", "rejected": " it."}) + "\n" for p in chunk)
        )
    return files


def _config(policy_dir, **overrides):
    config = {
        "base_model": str(policy_dir),
        "response_length": 8,
        "max_length": 64,
        "rollout_batch_size": 32,
        "mini_batch_size": 8,
        "batch_size": 32,
        "ppo_epochs": 4,
        "learning_rate": 1e-3,
        "temperature": 1.0,
        "init_kl_coef": 0.5,
        "target_kl": 3.0,
        "kl_horizon": 1000,
        "max_steps": 20,
        "seed": 0,
    }
    config.update(overrides)
    return config


class Recorder:
    def __init__(self, cancel_at: int | None = None):
        self.calls = []
        self.cancel_at = cancel_at

    def __call__(self, *, step, total, metrics):
        self.calls.append((step, total, dict(metrics)))
        if self.cancel_at is not None and step >= self.cancel_at:
            raise RunCancelled("cancel requested")


def _train(tmp_path, snapshot_files, reward_dir, config, progress=None):
    return train_ppo(
        config=config,
        train_file=snapshot_files["train"],
        validation_file=snapshot_files["validation"],
        reward_model_dir=reward_dir,
        output_dir=tmp_path / "run",
        progress=progress or Recorder(),
    )


def test_ppo_raises_the_reward_of_the_preferred_token_while_kl_stays_bounded(
    tmp_path, snapshot_files, sft_policy_dir, poem_reward_dir
):
    progress = Recorder()
    result = _train(tmp_path, snapshot_files, poem_reward_dir, _config(sft_policy_dir), progress)

    assert result["reward_mean_final"] > result["reward_mean_initial"] + 0.07, result
    assert result["kl_final"] < 6.0, result
    steps = [metrics for step, total, metrics in progress.calls if "reward_mean" in metrics]
    assert len(steps) == result["steps"] == 20
    assert max(m["kl"] for m in steps) < 8.0
    assert steps[-1]["reward_mean"] > steps[0]["reward_mean"] + 0.07
    # Every step reports the metrics the run page charts, finite; the adaptive controller moved beta.
    for metrics in steps:
        assert metrics.keys() >= STEP_METRICS and all(math.isfinite(v) for v in metrics.values())
    assert steps[-1]["beta"] != steps[0]["beta"] == 0.5
    assert 0 < max(m["clip_fraction"] for m in steps) < 1
    # One last call carries the evaluation, prefixed.
    step, total, final = progress.calls[-1]
    assert (step, total) == (20, 20) and final["eval_reward_mean"] == pytest.approx(result["reward_mean_final"])
    assert json.loads(json.dumps(result)) == result

    checkpoint = tmp_path / "run" / "checkpoint"
    assert (checkpoint / "value_head.pt").exists() and (checkpoint / "tokenizer.json").exists()
    assert torch.load(checkpoint / "value_head.pt")["weight"].abs().sum() > 0  # the critic learned something
    trained = AutoModelForCausalLM.from_pretrained(checkpoint)
    base = AutoModelForCausalLM.from_pretrained(sft_policy_dir)
    assert not torch.equal(trained.model.embed_tokens.weight, base.model.embed_tokens.weight)


def test_without_the_kl_penalty_the_same_run_drifts_far_from_the_reference(
    tmp_path, snapshot_files, sft_policy_dir, poem_reward_dir
):
    """The bound above is the penalty's doing: with beta = 0 the policy repeats " poem" and KL runs away."""
    config = _config(sft_policy_dir, init_kl_coef=0.0, adaptive_kl=False)
    result = _train(tmp_path, snapshot_files, poem_reward_dir, config)
    assert result["kl_final"] > 15.0, result
    assert result["reward_mean_final"] > 0.3, result


def test_run_cancelled_from_progress_stops_training_and_saves_nothing(
    tmp_path, snapshot_files, sft_policy_dir, poem_reward_dir
):
    progress = Recorder(cancel_at=2)
    with pytest.raises(RunCancelled):
        _train(tmp_path, snapshot_files, poem_reward_dir, _config(sft_policy_dir), progress)
    assert [step for step, _, _ in progress.calls] == [1, 2]
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_missing_eos_penalty_lowers_the_score_of_cut_off_responses(
    tmp_path, snapshot_files, sft_policy_dir, poem_reward_dir
):
    # Two tokens are too few for the policy's sentences to end: every response is cut off.
    scores = {}
    for penalty in (None, 1.0):
        progress = Recorder()
        config = _config(sft_policy_dir, response_length=2, max_steps=1, missing_eos_penalty=penalty)
        _train(tmp_path / str(penalty), snapshot_files, poem_reward_dir, config, progress)
        metrics = progress.calls[0][2]
        assert metrics["eos_fraction"] == 0.0
        scores[penalty] = metrics["score_mean"]
    assert scores[1.0] == pytest.approx(scores[None] - 1.0, abs=1e-5)


def test_lora_run_trains_adapters_and_saves_a_merged_model(tmp_path, snapshot_files, sft_policy_dir, poem_reward_dir):
    config = _config(sft_policy_dir, lora=True, lora_r=4, lora_alpha=8, max_steps=2, learning_rate=1e-2)
    result = _train(tmp_path, snapshot_files, poem_reward_dir, config)
    checkpoint = tmp_path / "run" / "checkpoint"
    assert not (checkpoint / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(checkpoint)
    base = AutoModelForCausalLM.from_pretrained(sft_policy_dir)
    assert not torch.equal(merged.model.layers[0].self_attn.q_proj.weight, base.model.layers[0].self_attn.q_proj.weight)
    assert math.isfinite(result["kl_final"])


def test_a_config_without_room_for_the_prompt_is_refused(tmp_path, snapshot_files, sft_policy_dir, poem_reward_dir):
    with pytest.raises(ConfigError) as error:
        _train(tmp_path, snapshot_files, poem_reward_dir, _config(sft_policy_dir, max_length=8, response_length=8))
    assert "max_length" in error.value.errors


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_path_runs_under_autocast(
    tmp_path, snapshot_files, sft_policy_dir, poem_reward_dir, monkeypatch, precision
):
    """The GPU path (autocast, frozen models in half precision, fp16 loss scaling), exercised on the CPU."""
    from trainer.ml import devices

    monkeypatch.setattr(devices, "pick_device", lambda: devices.Device(type="cpu", dtype=precision, name="cpu"))
    progress = Recorder()
    result = _train(tmp_path, snapshot_files, poem_reward_dir, _config(sft_policy_dir, max_steps=2), progress)
    assert all(math.isfinite(v) for _, _, metrics in progress.calls for v in metrics.values())
    assert math.isfinite(result["kl_final"]) and result["steps"] == 2
    assert torch.load(tmp_path / "run" / "checkpoint" / "value_head.pt")["weight"].dtype == torch.float32


def test_gradient_checkpointing_changes_no_update(tmp_path, snapshot_files, sft_policy_dir, poem_reward_dir):
    """Recomputing the activations in the backward pass gives the same gradients: the same run with and without
    gradient checkpointing ends with the same weights (and the layers were checkpointed: fewer saved tensors)."""
    import transformers.modeling_utils
    from torch.utils.checkpoint import checkpoint as real_checkpoint

    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return real_checkpoint(*args, **kwargs)

    weights = {}
    for on in (False, True):
        config = _config(sft_policy_dir, max_steps=2, gradient_checkpointing=on)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(transformers.modeling_utils, "checkpoint", counting)
            _train(tmp_path / str(on), snapshot_files, poem_reward_dir, config)
        weights[on] = AutoModelForCausalLM.from_pretrained(tmp_path / str(on) / "run" / "checkpoint").state_dict()
        if not on:
            assert not calls
    assert calls  # the layers of the update's forward passes were checkpointed
    for name, tensor in weights[False].items():
        torch.testing.assert_close(weights[True][name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_memory_options_reach_the_policy(snapshot_files, sft_policy_dir, poem_reward_dir):
    """torch_dtype, attn_implementation and lora_target_modules are read as the TRL kinds read them."""
    from trainer.ppo.train import _Runner

    config = _config(
        sft_policy_dir,
        lora=True,
        lora_r=4,
        lora_alpha=8,
        lora_target_modules=["q_proj", "v_proj"],
        torch_dtype="bfloat16",
        attn_implementation="eager",
    )
    runner = _Runner(config=config, reward_model_dir=poem_reward_dir)
    lm = runner.policy.lm
    adapted = {name.split(".")[-1] for name, module in lm.named_modules() if hasattr(module, "lora_A")}
    assert adapted == {"q_proj", "v_proj"}
    assert lm.get_base_model().model.embed_tokens.weight.dtype == torch.bfloat16
    assert lm.config._attn_implementation == "eager"
    assert runner.policy.value_head.weight.dtype == torch.float32  # the head stays in float32 (GAE, squared loss)
