"""An exported snapshot trains with plain TRL, outside Tandem's code: `datasets.load_dataset("json", ...)` reads
the files as they are and `trl.DPOTrainer` and `trl.RewardTrainer` take them for a few CPU steps on a tiny model,
in both the standard and the conversational form."""

import math

import pytest

from rewards.selectors import dataset_files
from rewards.services.datasets import dataset_create
from tests.rewards.test_datasets import agreed, make_batch

SUBJECTS = ["the model", "a reviewer", "the answer", "my friend", "the assistant", "our team"]


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path):
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")


def _items(conversational: bool) -> list[dict]:
    items = []
    for n in range(36):
        question = f"What does {SUBJECTS[n % 6]} say about topic {n % 12}?"  # 12 prompts, 3 pairs each
        if conversational:
            messages = [
                {"role": "user", "content": "Hello."},
                {"role": "assistant", "content": "Hi, ask away."},
                {"role": "user", "content": question},
            ]
            items.append({"messages": messages, "votes": ["a", "a", "b"]})
        else:
            items.append(agreed(question, "ab"[n % 2]))
    return items


@pytest.fixture(params=["standard", "conversational"])
def exported(request, project):
    batch = make_batch(project, _items(request.param == "conversational"))
    snapshot = dataset_create(project=project, batch_ids=[batch.pk], validation_fraction=0.25, seed=1)
    assert snapshot.prompt_format == request.param
    assert snapshot.train_count and snapshot.validation_count
    return snapshot, dataset_files(snapshot=snapshot)


def _load(files):
    from datasets import load_dataset

    return load_dataset(
        "json",
        data_files={"train": str(files["train"]), "validation": str(files["validation"])},
        cache_dir=str(files["train"].parent.parent / ".hf-cache"),
    )


def _common_args(tmp_path) -> dict:
    return {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "max_steps": 3,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "max_length": 128,
        "dataloader_num_workers": 0,
        "dataset_num_proc": None,
    }


def test_load_dataset_reads_the_files_with_their_columns(exported):
    snapshot, files = exported
    data = _load(files)
    assert data["train"].num_rows == snapshot.train_count
    assert data["validation"].num_rows == snapshot.validation_count
    assert {"prompt", "chosen", "rejected", "item_id", "votes", "agreement", "margin"} <= set(
        data["train"].column_names
    )
    row = data["train"][0]
    if snapshot.prompt_format == "conversational":
        assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    else:
        assert isinstance(row["prompt"], str) and isinstance(row["chosen"], str)


def test_dpo_trainer_trains_on_the_export(exported, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    _, files = exported
    data = _load(files)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = next(model.parameters()).detach().clone()
    trainer = DPOTrainer(
        model=model,
        args=DPOConfig(**_common_args(tmp_path), beta=0.1),
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        processing_class=tokenizer,
    )
    result = trainer.train()
    assert result.global_step == 3 and math.isfinite(result.training_loss)
    assert not next(model.parameters()).detach().equal(before)
    evaluation = trainer.evaluate()
    assert math.isfinite(evaluation["eval_loss"])
    assert "eval_rewards/accuracies" in evaluation


def test_reward_trainer_trains_on_the_export(exported, tiny_model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    _, files = exported
    data = _load(files)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    trainer = RewardTrainer(
        model=model,
        args=RewardConfig(**_common_args(tmp_path)),
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        processing_class=tokenizer,
    )
    result = trainer.train()
    assert result.global_step == 3 and math.isfinite(result.training_loss)
    evaluation = trainer.evaluate()
    assert math.isfinite(evaluation["eval_loss"]) and 0.0 <= evaluation["eval_accuracy"] <= 1.0
