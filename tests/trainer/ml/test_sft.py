"""trainer.ml.sft called as the worker calls it, on the tiny model: the loss covers the assistant's tokens only, the
evaluation's token loss is transformers' own loss on those tokens, training on answers that follow a pattern lowers
the validation perplexity below the base model's, and checkpoints along the run resume like DPO's."""

import json
import math
from pathlib import Path

import pytest

from tests.trainer.ml.synthetic import RecordingProgress
from tests.trainer.ppo.conftest import _one_torch_thread
from tests.trainer.sft_fixtures import pattern_answer
from trainer.configs import validate_config
from trainer.ml.checkpointing import read_resume_marker


@pytest.fixture(autouse=True)
def one_torch_thread():
    with _one_torch_thread():
        yield


def write_split(path: Path, numbers, *, system: bool = False) -> Path:
    lines = []
    for n in numbers:
        prompt, answer = pattern_answer(n)
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        if system:
            messages.insert(0, {"role": "system", "content": "Be brief."})
        lines.append(json.dumps({"messages": messages, "item_id": f"i{n}", "source": "human", "batch": "b"}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def sft_config(tiny_model_dir, **overrides):
    values = {"base_model": str(tiny_model_dir), "batch_size": 4, "eval_batch_size": 4, "max_length": 64}
    return validate_config("sft", {**values, "seed": 0, **overrides})


def run_sft(tiny_model_dir, tmp_path, *, saved=None, progress=None, resume_from=None, out="run", **overrides):
    from trainer.ml.sft import train_sft

    kwargs = {"on_checkpoint": saved} if saved is not None else {}
    return train_sft(
        config=sft_config(tiny_model_dir, **overrides),
        train_file=write_split(tmp_path / "data" / "train.jsonl", range(40)),
        validation_file=write_split(tmp_path / "data" / "validation.jsonl", range(40, 48)),
        output_dir=tmp_path / out,
        progress=progress or RecordingProgress(),
        resume_from=resume_from,
        **kwargs,
    )


def sft_trainer(tiny_model_dir, rows_file):
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from trainer.ml.devices import pick_device
    from trainer.ml.sft import load_demonstrations, sft_arguments

    config = sft_config(tiny_model_dir)
    rows = load_demonstrations(rows_file)
    args = SFTConfig(**sft_arguments(config=config, scratch_dir=rows_file.parent / "scratch", device=pick_device()))
    return SFTTrainer(
        model=config["base_model"],
        args=args,
        train_dataset=rows,
        eval_dataset=rows,
        processing_class=AutoTokenizer.from_pretrained(config["base_model"]),
    )


def test_only_the_assistant_tokens_are_labelled_and_the_token_loss_is_transformers_loss(tiny_model_dir, tmp_path):
    import torch

    from trainer.ml.sft import assistant_token_loss

    trainer = sft_trainer(tiny_model_dir, write_split(tmp_path / "rows.jsonl", [3, 12], system=True))
    tokenizer = trainer.processing_class
    for n, row in zip([3, 12], trainer.eval_dataset, strict=True):
        labelled = [token for token in row["labels"] if token != -100]
        assert tokenizer.decode(labelled) == pattern_answer(n)[1] + "</s>"  # the answer and its end, nothing else
        assert len(labelled) < len(row["input_ids"])

    model = trainer.model.eval()
    per_row = []
    with torch.no_grad():
        for row in trainer.eval_dataset:
            ids, labels = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
            loss = model(input_ids=ids, labels=labels).loss  # transformers: mean over the labelled tokens
            per_row.append((float(loss), int((labels[:, 1:] != -100).sum())))
    one = assistant_token_loss(trainer, trainer.eval_dataset.select([0]), batch_size=4)
    assert one.mean == pytest.approx(per_row[0][0], rel=1e-5) and one.tokens == per_row[0][1]
    both = assistant_token_loss(trainer, trainer.eval_dataset, batch_size=4)  # padded together in one batch
    weighted = sum(loss * n for loss, n in per_row) / sum(n for _, n in per_row)
    assert both.mean == pytest.approx(weighted, rel=1e-5) and both.tokens == sum(n for _, n in per_row)


def test_a_bad_line_is_named(tmp_path):
    from trainer.ml.sft import DemonstrationFormatError, load_demonstrations

    path = write_split(tmp_path / "rows.jsonl", [1, 2])
    last = {"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "?"}]}
    path.write_text(path.read_text() + json.dumps(last) + "\n")
    with pytest.raises(DemonstrationFormatError, match=r"rows.jsonl line 3: the last message is not the assistant"):
        load_demonstrations(path)


def test_training_on_a_pattern_lowers_validation_perplexity_and_checkpoints_resume(tiny_model_dir, tmp_path):
    saved = []
    progress = RecordingProgress()
    evaluation = run_sft(
        tiny_model_dir,
        tmp_path,
        saved=lambda **call: saved.append(call),
        progress=progress,
        learning_rate=1e-3,
        epochs=2,
    )
    assert evaluation["n_validation_examples"] == 8 and evaluation["n_train_examples"] == 40
    assert evaluation["validation_perplexity"] == pytest.approx(math.exp(evaluation["validation_loss"]))
    assert evaluation["base_validation_perplexity"] == pytest.approx(math.exp(evaluation["base_validation_loss"]))
    assert evaluation["validation_perplexity"] < 0.8 * evaluation["base_validation_perplexity"], evaluation
    assert evaluation["validation_loss_change"] < 0
    assert (tmp_path / "run" / "checkpoint" / "config.json").is_file()
    # 40 rows / 4 = 10 steps an epoch, 2 epochs: four spread checkpoints, then the final one (ours).
    assert [c["step"] for c in saved] == [4, 8, 12, 16]
    assert progress.step_calls[-1]["step"] == 20 and "eval_validation_perplexity" in progress.calls[-1]["metrics"]
    folder = saved[1]["folder"]
    assert read_resume_marker(folder)["step"] == 8

    resumed = RecordingProgress()
    again = run_sft(
        tiny_model_dir, tmp_path, progress=resumed, resume_from=folder, out="resumed", learning_rate=1e-3, epochs=2
    )
    assert resumed.step_calls[0]["step"] == 9 and resumed.step_calls[-1]["step"] == 20
    assert again["base_validation_loss"] == pytest.approx(evaluation["base_validation_loss"])
    assert again["validation_loss"] == pytest.approx(evaluation["validation_loss"], rel=1e-3)


def test_lora_trains_adapters_and_saves_merged_weights(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    evaluation = run_sft(tiny_model_dir, tmp_path, lora=True, lora_r=8, learning_rate=5e-3, max_steps=10)
    assert evaluation["validation_loss"] < evaluation["base_validation_loss"], evaluation
    checkpoint = tmp_path / "run" / "checkpoint"
    assert not (checkpoint / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(checkpoint)  # plain weights: no peft needed to load them
    assert not any("lora" in name for name, _ in model.named_parameters())
