"""Loading snapshot splits: standard and conversational JSONL, empty splits, wrong files; prompts for online runs."""

import json

import pytest

from tests.trainer.ml.synthetic import pair_rows
from trainer.ml.data import DatasetFormatError, answer_text, is_conversational, load_split, unique_prompts


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("conversational", [False, True])
def test_loads_preference_rows_with_their_extra_keys(tmp_path, conversational):
    rows = pair_rows(5, seed=3, conversational=conversational)
    dataset = load_split(write(tmp_path / "train.jsonl", rows), cache_dir=tmp_path / "cache")
    assert len(dataset) == 5
    assert {"prompt", "chosen", "rejected", "item_id", "votes", "margin"} <= set(dataset.column_names)
    assert is_conversational(dataset) is conversational
    assert dataset[0]["chosen"] == rows[0]["chosen"]
    assert answer_text(dataset[0]["chosen"]).strip() == answer_text(rows[0]["chosen"]).strip()


def test_empty_split_is_an_empty_dataset(tmp_path):
    (tmp_path / "validation.jsonl").write_text("")
    dataset = load_split(tmp_path / "validation.jsonl")
    assert len(dataset) == 0 and not is_conversational(dataset)


def test_missing_file_or_columns_are_refused(tmp_path):
    with pytest.raises(DatasetFormatError, match="does not exist"):
        load_split(tmp_path / "nope.jsonl")
    path = write(tmp_path / "bad.jsonl", [{"prompt": "p", "answer": "a"}])
    with pytest.raises(DatasetFormatError, match="no chosen, rejected column"):
        load_split(path, cache_dir=tmp_path / "cache")


def test_unique_prompts_keeps_first_seen_order(tmp_path):
    rows = pair_rows(3, seed=4)
    rows.append(dict(rows[0], chosen=" another one helpful."))
    dataset = load_split(write(tmp_path / "train.jsonl", rows), cache_dir=tmp_path / "cache")
    prompts = unique_prompts(dataset)
    assert prompts["prompt"] == [r["prompt"] for r in rows[:3]]
