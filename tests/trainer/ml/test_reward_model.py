"""Reward model runs on the tiny model: it learns an easy signal, reports the length monitor, saves a usable checkpoint,
reports every step, and stops when the progress callback cancels."""

import json

import numpy as np
import pytest
import torch

from tests.trainer.ml.synthetic import RecordingProgress, write_snapshot
from trainer.configs import validate_config
from trainer.ml.reward_model import evaluate_rewards, train_reward_model
from trainer.progress import RunCancelled

KEYS = {
    "accuracy",
    "accuracy_shorter_chosen",
    "reward_length_spearman",
    "baseline_longer_accuracy",
    "baseline_longer_accuracy_shorter_chosen",
    "n_pairs",
    "n_shorter_chosen",
}


def config(tiny_model_dir, **overrides):
    values = {"base_model": str(tiny_model_dir), "learning_rate": 1e-3, "batch_size": 16, "seed": 0}
    return validate_config("reward_model", {**values, **overrides})


def test_learns_the_signal_reports_each_step_and_saves_the_evaluated_model(tiny_model_dir, tmp_path):
    train_file, validation_file = write_snapshot(tmp_path / "data", n_train=256, n_validation=64)
    progress = RecordingProgress()
    evaluation = train_reward_model(
        config=config(tiny_model_dir, epochs=2),
        train_file=train_file,
        validation_file=validation_file,
        output_dir=tmp_path / "run",
        progress=progress,
    )

    assert set(evaluation) >= KEYS
    json.dumps(evaluation)  # stored as the run's evaluation
    assert evaluation["accuracy"] >= 0.85  # 1.0 with this seed; chance is 0.5
    assert evaluation["accuracy_shorter_chosen"] >= 0.85  # the marker, not length, was learned
    assert -1 <= evaluation["reward_length_spearman"] <= 1
    # The baseline and the counts follow from the validation file alone.
    rows = [json.loads(line) for line in validation_file.read_text().splitlines()]
    chosen_len = np.array([len(r["chosen"]) for r in rows])
    rejected_len = np.array([len(r["rejected"]) for r in rows])
    assert evaluation["n_pairs"] == 64
    assert evaluation["n_shorter_chosen"] == int((chosen_len < rejected_len).sum())
    baseline = np.where(chosen_len > rejected_len, 1.0, np.where(chosen_len < rejected_len, 0.0, 0.5)).mean()
    assert evaluation["baseline_longer_accuracy"] == pytest.approx(baseline)
    assert evaluation["baseline_longer_accuracy_shorter_chosen"] == 0.0
    assert evaluation["accuracy"] > evaluation["baseline_longer_accuracy"]

    # One call per optimizer step (256 pairs / 16 x 2 epochs), in order, with the step's loss; then the evaluation.
    steps = progress.step_calls
    assert [c["step"] for c in steps] == list(range(1, 33))
    assert all(c["total"] == 32 for c in progress.calls)
    assert all({"loss", "learning_rate", "accuracy"} <= set(c["metrics"]) for c in steps)
    assert steps[-1]["metrics"]["loss"] < steps[0]["metrics"]["loss"]
    final = progress.calls[-1]
    assert final["metrics"]["eval_accuracy"] == evaluation["accuracy"] and len(progress.calls) == 33

    # The checkpoint is a plain sequence classifier that scores the validation set as evaluated.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    checkpoint = tmp_path / "run" / "checkpoint"
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    texts = [r["prompt"] + r[side] + tokenizer.eos_token for r in rows for side in ("chosen", "rejected")]
    scores = []
    with torch.no_grad():
        for text in texts:  # one at a time: no padding involved
            scores.append(model(**tokenizer(text, return_tensors="pt")).logits.item())
    scores = np.array(scores).reshape(-1, 2)
    assert np.mean(scores[:, 0] > scores[:, 1]) == pytest.approx(evaluation["accuracy"])
    assert np.mean(scores[:, 0]) == pytest.approx(evaluation["reward_chosen_mean"], abs=1e-4)


def test_cancel_from_progress_stops_at_that_step_and_propagates(tiny_model_dir, tmp_path):
    train_file, validation_file = write_snapshot(tmp_path / "data", n_train=128, n_validation=16)
    progress = RecordingProgress(cancel_at=3)
    with pytest.raises(RunCancelled, match="cancel requested"):
        train_reward_model(
            config=config(tiny_model_dir),
            train_file=train_file,
            validation_file=validation_file,
            output_dir=tmp_path / "run",
            progress=progress,
        )
    assert [c["step"] for c in progress.calls] == [1, 2, 3]  # no step after the cancel, no evaluation
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_margin_column_enters_the_loss_only_when_asked(tiny_model_dir, tmp_path):
    # With a fresh head chosen and rejected score about the same, so the first loss is -log sigmoid(-margin).
    train_file, validation_file = write_snapshot(tmp_path / "data", n_train=16, n_validation=4, margin=2.0)
    first_loss = {}
    for use_margin in (False, True):
        progress = RecordingProgress()
        train_reward_model(
            config=config(tiny_model_dir, max_steps=1, use_margin=use_margin),
            train_file=train_file,
            validation_file=validation_file,
            output_dir=tmp_path / f"run-{use_margin}",
            progress=progress,
        )
        first_loss[use_margin] = progress.calls[0]["metrics"]["loss"]
    assert first_loss[False] == pytest.approx(np.log(2), abs=0.05)
    assert first_loss[True] == pytest.approx(np.log1p(np.exp(2.0)), abs=0.05)


def test_lora_on_conversational_pairs_saves_a_merged_classifier(tiny_model_dir, tmp_path):
    train_file, validation_file = write_snapshot(tmp_path / "data", n_train=64, n_validation=16, conversational=True)
    progress = RecordingProgress()
    evaluation = train_reward_model(
        config=config(tiny_model_dir, lora=True, lora_r=4, lora_alpha=8, max_steps=4),
        train_file=train_file,
        validation_file=validation_file,
        output_dir=tmp_path / "run",
        progress=progress,
    )
    assert set(evaluation) >= KEYS and evaluation["n_pairs"] == 16
    assert 0 <= evaluation["accuracy"] <= 1
    assert len(progress.step_calls) == 4
    checkpoint = tmp_path / "run" / "checkpoint"
    assert not (checkpoint / "adapter_config.json").exists()  # merged: loads without peft or the base model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    assert model.config.num_labels == 1


def test_pairs_longer_than_max_length_are_left_out_and_counted(tiny_model_dir, tmp_path):
    train_file, validation_file = write_snapshot(tmp_path / "data", n_train=32, n_validation=16)
    rows = [json.loads(line) for line in validation_file.read_text().splitlines()]
    rows[0]["chosen"] = " data" * 200
    validation_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    evaluation = train_reward_model(
        config=config(tiny_model_dir, max_steps=1, max_length=64),
        train_file=train_file,
        validation_file=validation_file,
        output_dir=tmp_path / "run",
        progress=RecordingProgress(),
    )
    assert evaluation["n_pairs"] == 15 and evaluation["n_validation_dropped_too_long"] == 1


def test_evaluate_rewards_against_hand_computed_figures():
    evaluation = evaluate_rewards(
        chosen_rewards=np.array([2.0, 0.0, 1.0, 3.0]),
        rejected_rewards=np.array([1.0, 1.0, 1.0, 0.0]),
        chosen_lengths=np.array([10.0, 50.0, 5.0, 8.0]),
        rejected_lengths=np.array([20.0, 40.0, 5.0, 30.0]),
    )
    # Model: right, wrong, tie (1/2), right. Shorter chosen: pairs 0 and 3, both right.
    assert evaluation["accuracy"] == pytest.approx(2.5 / 4)
    assert evaluation["n_shorter_chosen"] == 2 and evaluation["accuracy_shorter_chosen"] == 1.0
    # Longer answer: wrong, right, tie, wrong.
    assert evaluation["baseline_longer_accuracy"] == pytest.approx(1.5 / 4)
    assert evaluation["baseline_longer_accuracy_shorter_chosen"] == 0.0
    from scipy.stats import spearmanr

    expected = spearmanr([2, 0, 1, 3, 1, 1, 1, 0], [10, 50, 5, 8, 20, 40, 5, 30]).statistic
    assert evaluation["reward_length_spearman"] == pytest.approx(expected)
    assert evaluation["n_pairs"] == 4


def test_evaluate_rewards_undefined_figures_are_none():
    evaluation = evaluate_rewards(
        chosen_rewards=np.array([1.0, 1.0]),
        rejected_rewards=np.array([1.0, 1.0]),
        chosen_lengths=np.array([30.0, 40.0]),
        rejected_lengths=np.array([10.0, 20.0]),
    )
    assert evaluation["accuracy"] == 0.5  # every pair a tie
    assert evaluation["accuracy_shorter_chosen"] is None and evaluation["n_shorter_chosen"] == 0
    assert evaluation["reward_length_spearman"] is None  # constant rewards
    empty = evaluate_rewards(
        chosen_rewards=np.zeros(0),
        rejected_rewards=np.zeros(0),
        chosen_lengths=np.zeros(0),
        rejected_lengths=np.zeros(0),
    )
    assert empty["n_pairs"] == 0 and empty["accuracy"] is None and empty["baseline_longer_accuracy"] is None
    json.dumps(empty)
