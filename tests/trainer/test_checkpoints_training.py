"""Checkpoints along DPO runs, calling the training function as the worker does: intermediate checkpoints at the
scheduled steps (loadable folders with the optimizer state), a run resumed from one reaching the same total step
count as an uninterrupted run, and a cancelled run keeping those it reached. PPO: tests/trainer/ppo/."""

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from tests.trainer.ml.synthetic import RecordingProgress, write_snapshot
from tests.trainer.ppo.conftest import _one_torch_thread
from trainer.configs import validate_config
from trainer.ml.checkpointing import RESUME_DIRNAME, file_manifest, read_resume_marker, resume_state_dir
from trainer.progress import RunCancelled


@pytest.fixture(autouse=True)
def one_torch_thread():
    with _one_torch_thread():
        yield


class Saved:
    """An on_checkpoint that remembers what it was told (and the manifest at that moment)."""

    def __init__(self):
        self.calls = []

    def __call__(self, *, step, folder, metrics):
        self.calls.append(
            {"step": step, "folder": Path(folder), "metrics": dict(metrics), "files": file_manifest(folder)}
        )

    @property
    def steps(self):
        return [c["step"] for c in self.calls]


def dpo_config(tiny_model_dir, **overrides):
    values = {"base_model": str(tiny_model_dir), "learning_rate": 1e-3, "batch_size": 8, "eval_batch_size": 8}
    return validate_config("dpo", {**values, "seed": 0, "max_steps": 10, **overrides})


def _dpo(tiny_model_dir, data, output_dir, *, saved, progress=None, resume_from=None, **overrides):
    from trainer.ml.dpo import train_dpo

    return train_dpo(
        config=dpo_config(tiny_model_dir, **overrides),
        train_file=data[0],
        validation_file=data[1],
        output_dir=output_dir,
        progress=progress or RecordingProgress(),
        on_checkpoint=saved,
        resume_from=resume_from,
    )


def test_dpo_saves_four_spread_checkpoints_and_a_resumed_run_ends_at_the_same_step(tiny_model_dir, tmp_path):
    data = write_snapshot(tmp_path / "data", n_train=48, n_validation=8)
    saved = Saved()
    progress = RecordingProgress()
    _dpo(tiny_model_dir, data, tmp_path / "run", saved=saved, progress=progress)
    assert saved.steps == [2, 4, 6, 8]  # 4 evenly spaced; step 10 is the final checkpoint
    assert [c["step"] for c in progress.step_calls][-1] == 10
    for call in saved.calls:
        folder = call["folder"]
        assert folder == tmp_path / "run" / "checkpoints" / f"step-{call['step']}"
        assert {"config.json", "model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"} <= set(
            call["files"]
        )
        assert read_resume_marker(folder) == {"format": "hf-trainer", "state_dir": ".", "step": call["step"]}
        assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == call["step"]
        assert "loss" in call["metrics"]
    assert not (tmp_path / "run" / "checkpoints" / ".trainer").exists()
    AutoModelForCausalLM.from_pretrained(saved.calls[1]["folder"])  # a plain save_pretrained folder

    # Resumed from step 4 in a new folder: steps 5..10 only, checkpoints 6 and 8 again, the same final step.
    resumed_saved, resumed_progress = Saved(), RecordingProgress()
    _dpo(
        tiny_model_dir,
        data,
        tmp_path / "resumed",
        saved=resumed_saved,
        progress=resumed_progress,
        resume_from=saved.calls[1]["folder"],
    )
    steps = [c["step"] for c in resumed_progress.step_calls]
    assert steps == list(range(5, 11))
    assert resumed_saved.steps == [6, 8]
    assert resumed_progress.step_calls[-1]["total"] == progress.step_calls[-1]["total"] == 10
    # Same data order, same optimizer state: the resumed run's losses are the uninterrupted run's.
    original = {c["step"]: c["metrics"]["loss"] for c in progress.step_calls}
    for call in resumed_progress.step_calls:
        assert call["metrics"]["loss"] == pytest.approx(original[call["step"]], rel=1e-3, abs=1e-4)


def test_dpo_with_lora_keeps_merged_weights_on_top_and_the_adapter_to_resume(tiny_model_dir, tmp_path):
    data = write_snapshot(tmp_path / "data", n_train=24, n_validation=8)
    saved = Saved()
    lora = {"lora": True, "lora_r": 4, "lora_alpha": 8, "max_steps": 4, "checkpoint_every": 2}
    _dpo(tiny_model_dir, data, tmp_path / "run", saved=saved, **lora)
    assert saved.steps == [2]
    folder = saved.calls[0]["folder"]
    assert "adapter_config.json" not in saved.calls[0]["files"]
    assert f"{RESUME_DIRNAME}/adapter_model.safetensors" in saved.calls[0]["files"]
    assert f"{RESUME_DIRNAME}/optimizer.pt" in saved.calls[0]["files"]
    assert resume_state_dir(folder) == (folder / RESUME_DIRNAME).resolve()
    AutoModelForCausalLM.from_pretrained(folder)

    progress = RecordingProgress()
    _dpo(tiny_model_dir, data, tmp_path / "resumed", saved=Saved(), progress=progress, resume_from=folder, **lora)
    assert [c["step"] for c in progress.step_calls] == [3, 4]


def test_a_cancelled_dpo_run_keeps_the_checkpoints_it_reached(tiny_model_dir, tmp_path):
    data = write_snapshot(tmp_path / "data", n_train=48, n_validation=8)
    saved = Saved()
    with pytest.raises(RunCancelled):
        _dpo(tiny_model_dir, data, tmp_path / "run", saved=saved, progress=RecordingProgress(cancel_at=5))
    assert saved.steps == [2, 4]
    assert all(call["folder"].is_dir() for call in saved.calls)
    assert not (tmp_path / "run" / "checkpoint").exists()
