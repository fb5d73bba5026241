"""DPO runs on the tiny model: the policy moves towards chosen answers against the frozen reference, and the
per-pair validation figures agree with TRL's own evaluation."""

import json

import pytest

from tests.trainer.ml.synthetic import RecordingProgress, write_snapshot
from trainer.configs import validate_config
from trainer.progress import RunCancelled

KEYS = {"reward_accuracy", "reward_margin_mean", "chosen_reward_mean", "rejected_reward_mean", "n_pairs"}


def config(tiny_model_dir, **overrides):
    values = {"base_model": str(tiny_model_dir), "learning_rate": 1e-3, "batch_size": 8, "eval_batch_size": 8}
    return validate_config("dpo", {**values, "seed": 0, **overrides})


def test_dpo_learns_the_preference_and_matches_trl_evaluation(tiny_model_dir, tmp_path, monkeypatch):
    import trainer.ml.dpo as dpo

    trl_metrics = {}
    real = dpo.implicit_rewards

    def with_trl_evaluation(trainer, dataset, *, batch_size):
        trl_metrics.update(trainer.evaluate())  # TRL's batch means; equal to ours when batches are full
        return real(trainer, dataset, batch_size=batch_size)

    monkeypatch.setattr(dpo, "implicit_rewards", with_trl_evaluation)
    train_file, validation_file = write_snapshot(tmp_path / "data", n_train=128, n_validation=32)
    progress = RecordingProgress()
    evaluation = dpo.train_dpo(
        config=config(tiny_model_dir, beta=0.1),
        train_file=train_file,
        validation_file=validation_file,
        output_dir=tmp_path / "run",
        progress=progress,
    )
    assert set(evaluation) >= KEYS
    json.dumps(evaluation)
    assert evaluation["n_pairs"] == 32
    assert evaluation["reward_accuracy"] >= 0.75  # 0.94 with this seed; the reference scores 0.5 (all ties)
    assert evaluation["reward_margin_mean"] > 0
    assert evaluation["reward_margin_mean"] == pytest.approx(
        evaluation["chosen_reward_mean"] - evaluation["rejected_reward_mean"]
    )
    assert evaluation["reward_accuracy"] == pytest.approx(trl_metrics["eval_rewards/accuracies"])
    assert evaluation["reward_margin_mean"] == pytest.approx(trl_metrics["eval_rewards/margins"], rel=1e-4)
    assert evaluation["chosen_reward_mean"] == pytest.approx(trl_metrics["eval_rewards/chosen"], rel=1e-4)

    assert [c["step"] for c in progress.step_calls] == list(range(1, 17))
    assert all({"loss", "rewards_accuracies", "rewards_margins"} <= set(c["metrics"]) for c in progress.step_calls)
    assert progress.calls[-1]["metrics"]["eval_reward_accuracy"] == evaluation["reward_accuracy"]

    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = tmp_path / "run" / "checkpoint"
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    out = model.generate(**tokenizer("Question: the data?", return_tensors="pt"), max_new_tokens=4, do_sample=False)
    assert out.shape[1] > 0


def test_dpo_with_lora_on_conversational_pairs(tiny_model_dir, tmp_path):
    train_file, validation_file = write_snapshot(tmp_path / "data", n_train=32, n_validation=8, conversational=True)
    progress = RecordingProgress()
    from trainer.ml.dpo import train_dpo

    evaluation = train_dpo(
        config=config(tiny_model_dir, lora=True, lora_r=4, lora_alpha=8, max_steps=3),
        train_file=train_file,
        validation_file=validation_file,
        output_dir=tmp_path / "run",
        progress=progress,
    )
    assert evaluation["n_pairs"] == 8 and 0 <= evaluation["reward_accuracy"] <= 1
    assert len(progress.step_calls) == 3
    checkpoint = tmp_path / "run" / "checkpoint"
    assert not (checkpoint / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(checkpoint)


def test_dpo_cancel_propagates(tiny_model_dir, tmp_path):
    from trainer.ml.dpo import train_dpo

    train_file, validation_file = write_snapshot(tmp_path / "data", n_train=64, n_validation=8)
    progress = RecordingProgress(cancel_at=2)
    with pytest.raises(RunCancelled):
        train_dpo(
            config=config(tiny_model_dir),
            train_file=train_file,
            validation_file=validation_file,
            output_dir=tmp_path / "run",
            progress=progress,
        )
    assert [c["step"] for c in progress.calls] == [1, 2]
    assert not (tmp_path / "run" / "checkpoint").exists()
