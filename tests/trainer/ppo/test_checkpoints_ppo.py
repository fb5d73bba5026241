"""Checkpoints along a PPO run: the policy saved like the final checkpoint plus the loop's state, and a run resumed
from one continuing exactly where the uninterrupted run was (same steps, same samples, same final weights)."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.trainer.ppo.test_train import SUBJECTS, VERBS
from tests.trainer.ppo.test_train import _config as ppo_config
from trainer.ml.checkpointing import RESUME_DIRNAME, file_manifest, read_resume_marker


@pytest.fixture(scope="module")
def snapshot_files(tmp_path_factory):
    prompts = [f"{s} {v}".capitalize() for s in SUBJECTS for v in VERBS]
    folder = tmp_path_factory.mktemp("snapshot")
    files = {}
    for split, chunk in (("train", prompts[:48]), ("validation", prompts[48:])):
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text(
            "".join(json.dumps({"prompt": p, "chosen": " a poem.", "rejected": " it."}) + "\n" for p in chunk)
        )
    return files


class Saved:
    def __init__(self):
        self.calls = []

    def __call__(self, *, step, folder, metrics):
        self.calls.append(
            {"step": step, "folder": Path(folder), "metrics": dict(metrics), "files": file_manifest(folder)}
        )

    @property
    def steps(self):
        return [c["step"] for c in self.calls]


def _ppo(policy_dir, reward_dir, files, output_dir, *, saved, progress, resume_from=None, **overrides):
    from trainer.ppo import train_ppo

    return train_ppo(
        config=ppo_config(policy_dir, **{"max_steps": 6, "rollout_batch_size": 16, "ppo_epochs": 1, **overrides}),
        train_file=files["train"],
        validation_file=files["validation"],
        reward_model_dir=reward_dir,
        output_dir=output_dir,
        progress=progress,
        on_checkpoint=saved,
        resume_from=resume_from,
    )


class Steps:
    def __init__(self):
        self.calls = []

    def __call__(self, *, step, total, metrics):
        if not any(k.startswith("eval_") for k in metrics):
            self.calls.append((step, total, dict(metrics)))


def test_ppo_saves_checkpoints_with_its_loop_state_and_resumes_to_the_same_step(
    sft_policy_dir, poem_reward_dir, snapshot_files, tmp_path
):
    saved, steps = Saved(), Steps()
    evaluation = _ppo(
        sft_policy_dir,
        poem_reward_dir,
        snapshot_files,
        tmp_path / "run",
        saved=saved,
        progress=steps,
        checkpoint_every=2,
    )
    assert saved.steps == [2, 4]
    assert [s for s, _, _ in steps.calls] == list(range(1, 7))
    folder = saved.calls[0]["folder"]
    assert {"config.json", "model.safetensors", "value_head.pt", f"{RESUME_DIRNAME}/ppo_state.pt"} <= set(
        saved.calls[0]["files"]
    )
    assert read_resume_marker(folder)["format"] == "ppo"
    assert saved.calls[0]["metrics"]["reward_mean"] == steps.calls[1][2]["reward_mean"]
    AutoModelForCausalLM.from_pretrained(folder)

    resumed_saved, resumed_steps = Saved(), Steps()
    resumed = _ppo(
        sft_policy_dir,
        poem_reward_dir,
        snapshot_files,
        tmp_path / "resumed",
        saved=resumed_saved,
        progress=resumed_steps,
        resume_from=saved.calls[1]["folder"],
        checkpoint_every=2,
    )
    assert [s for s, _, _ in resumed_steps.calls] == [5, 6]
    assert resumed_saved.steps == []
    assert resumed["steps"] == evaluation["steps"] == 6
    # Same weights, optimizer, prompt order and RNG: step 5 is the uninterrupted run's step 5.
    for (step, _, metrics), (_, _, original) in zip(resumed_steps.calls, steps.calls[4:], strict=True):
        assert metrics["reward_mean"] == pytest.approx(original["reward_mean"], abs=1e-4), step
        assert metrics["kl"] == pytest.approx(original["kl"], abs=1e-4), step
    assert resumed["reward_mean_initial"] == evaluation["reward_mean_initial"]
    final = AutoModelForCausalLM.from_pretrained(tmp_path / "resumed" / "checkpoint")
    uninterrupted = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "checkpoint")
    for (name, a), (_, b) in zip(final.state_dict().items(), uninterrupted.state_dict().items(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name
