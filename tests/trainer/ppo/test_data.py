"""Prompts from a snapshot split: distinct, chat-templated when conversational, dropped when too long, left-padded."""

import json

import pytest
from transformers import AutoTokenizer

from trainer.ppo.data import encode_prompt, encode_prompts, left_pad, load_prompts


def _write(path, prompts):
    path.write_text("".join(json.dumps({"prompt": p, "chosen": "a", "rejected": "b"}) + "\n" for p in prompts))
    return path


def test_load_prompts_keeps_each_prompt_once_in_order(tmp_path):
    chat = [{"role": "user", "content": "Hello"}]
    path = _write(tmp_path / "train.jsonl", ["b", "a", "b", chat, chat, "a"])
    assert load_prompts(path) == ["b", "a", chat]


def test_load_prompts_names_the_line_of_a_bad_prompt(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"prompt": "ok"}) + "\n\n" + json.dumps({"prompt": 3}) + "\n")
    with pytest.raises(ValueError, match=r"train.jsonl line 3"):
        load_prompts(path)


def test_conversational_prompts_go_through_the_chat_template_with_the_assistant_turn_open(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    ids = encode_prompt(tokenizer, messages)
    assert tokenizer.decode(ids) == "<|system|>Be brief.</s><|user|>Hi there</s><|assistant|>"
    assert ids.count(tokenizer.convert_tokens_to_ids("<|assistant|>")) == 1


def test_without_a_chat_template_the_contents_are_joined(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    ids = encode_prompt(tokenizer, [{"role": "user", "content": "The model"}, {"role": "user", "content": "writes"}])
    assert tokenizer.decode(ids) == "The model\nwrites"


def test_prompts_longer_than_the_room_left_are_dropped_and_counted(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    short, long = "The model", "The model writes a long story in detail again and again"
    kept, dropped = encode_prompts(tokenizer, [short, long, short], max_query_length=len(tokenizer(short).input_ids))
    assert kept == [tokenizer(short).input_ids] * 2 and dropped == 1


def test_left_pad_right_aligns_queries():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
