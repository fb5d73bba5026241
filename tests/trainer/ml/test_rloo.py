"""RLOO runs on the tiny model with a reward model trained in the test: generation, scoring, progress, checkpoint."""

import json

import pytest

from tests.trainer.ml.synthetic import RecordingProgress, write_snapshot
from trainer.configs import validate_config


@pytest.fixture(scope="module")
def reward_run(tiny_model_dir, tmp_path_factory):
    from trainer.ml.reward_model import train_reward_model

    root = tmp_path_factory.mktemp("rloo")
    train_file, validation_file = write_snapshot(root / "data", n_train=64, n_validation=16)
    config = validate_config(
        "reward_model", {"base_model": str(tiny_model_dir), "learning_rate": 1e-3, "batch_size": 16, "seed": 0}
    )
    train_reward_model(
        config=config,
        train_file=train_file,
        validation_file=validation_file,
        output_dir=root / "reward",
        progress=RecordingProgress(),
    )
    return root


def config(tiny_model_dir, **overrides):
    values = {
        "base_model": str(tiny_model_dir),
        "learning_rate": 1e-3,
        "batch_size": 8,
        "eval_batch_size": 8,
        "num_generations": 4,
        "response_length": 8,
        "max_steps": 4,
        "seed": 0,
    }
    return validate_config("rloo", {**values, **overrides})


def test_rloo_runs_with_the_reward_model_and_reports_rewards(tiny_model_dir, reward_run, tmp_path):
    from trainer.ml.rloo import train_rloo

    progress = RecordingProgress()
    evaluation = train_rloo(
        config=config(tiny_model_dir),
        train_file=reward_run / "data" / "train.jsonl",
        validation_file=reward_run / "data" / "validation.jsonl",
        reward_model_dir=reward_run / "reward",
        output_dir=tmp_path / "run",
        progress=progress,
    )
    json.dumps(evaluation)
    assert evaluation["n_prompts"] == 16 and evaluation["n_train_prompts"] == 64
    for key in ("reward_mean", "initial_reward_mean", "reward_gain", "kl", "completion_length_mean"):
        assert isinstance(evaluation[key], float), key
    assert evaluation["reward_gain"] == pytest.approx(evaluation["reward_mean"] - evaluation["initial_reward_mean"])
    assert 0 < evaluation["completion_length_mean"] <= 8
    assert evaluation["reward_std"] > 0  # the reward model tells the sampled answers apart

    steps = progress.step_calls
    assert [c["step"] for c in steps] == [1, 2, 3, 4]
    assert all({"loss", "reward", "kl"} <= set(c["metrics"]) for c in steps)
    assert progress.calls[-1]["metrics"]["eval_reward_mean"] == evaluation["reward_mean"]

    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "checkpoint")


def test_rloo_refuses_a_missing_reward_checkpoint(tiny_model_dir, reward_run, tmp_path):
    from trainer.ml.rloo import train_rloo

    with pytest.raises(FileNotFoundError, match="No reward model checkpoint"):
        train_rloo(
            config=config(tiny_model_dir),
            train_file=reward_run / "data" / "train.jsonl",
            validation_file=reward_run / "data" / "validation.jsonl",
            reward_model_dir=tmp_path / "nothing-here",
            output_dir=tmp_path / "run",
            progress=RecordingProgress(),
        )


def test_rloo_saves_a_checkpoint_and_resumes_from_it(tiny_model_dir, reward_run, tmp_path):
    from trainer.ml.checkpointing import file_manifest, read_resume_marker
    from trainer.ml.rloo import train_rloo

    saved = []

    def on_checkpoint(*, step, folder, metrics):
        saved.append((step, folder, file_manifest(folder), metrics))

    common = {
        "train_file": reward_run / "data" / "train.jsonl",
        "validation_file": reward_run / "data" / "validation.jsonl",
        "reward_model_dir": reward_run / "reward",
    }
    train_rloo(
        config=config(tiny_model_dir, checkpoint_every=2),
        output_dir=tmp_path / "run",
        progress=RecordingProgress(),
        on_checkpoint=on_checkpoint,
        **common,
    )
    assert [s[0] for s in saved] == [2]
    _, folder, files, metrics = saved[0]
    assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"} <= set(files)
    assert read_resume_marker(folder)["format"] == "hf-trainer" and "loss" in metrics

    progress = RecordingProgress()
    train_rloo(
        config=config(tiny_model_dir, checkpoint_every=2),
        output_dir=tmp_path / "resumed",
        progress=progress,
        resume_from=folder,
        **common,
    )
    assert [c["step"] for c in progress.step_calls] == [3, 4]
    assert (tmp_path / "resumed" / "checkpoint" / "config.json").is_file()


@pytest.mark.parametrize(("backend", "use_vllm"), [("transformers", False), ("vllm", True)])
def test_the_backend_picks_trls_rollout_engine(backend, use_vllm, tiny_model_dir, reward_run, tmp_path, monkeypatch):
    """backend vllm hands RLOO's rollouts to TRL's colocated vLLM engine (CUDA only: the trainer is stopped before
    it starts one here); the run's tensor_parallel_size is the engine's."""
    import trl

    from trainer.ml.rloo import train_rloo

    class Stop(Exception):
        pass

    seen = {}

    def capture(*args, **kwargs):
        seen["args"] = kwargs["args"]
        raise Stop

    monkeypatch.setattr(trl, "RLOOTrainer", capture)
    with pytest.raises(Stop):
        train_rloo(
            config=config(tiny_model_dir, backend=backend),
            train_file=reward_run / "data" / "train.jsonl",
            validation_file=reward_run / "data" / "validation.jsonl",
            reward_model_dir=reward_run / "reward",
            output_dir=tmp_path / "run",
            progress=RecordingProgress(),
        )
    args = seen["args"]
    assert (args.use_vllm, args.vllm_mode, args.vllm_tensor_parallel_size) == (use_vllm, "colocate", 1)
