"""The tiny model folder loads like a hub checkpoint: tokenizer, causal LM (generates), reward-model head."""

import json

import torch


def test_tokenizer_round_trips_text_and_knows_its_special_tokens(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "The model explains the question clearly."
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text) / 2, "BPE merges should make words shorter than their bytes"
    assert {tokenizer.pad_token, tokenizer.eos_token, tokenizer.bos_token, tokenizer.unk_token} == {
        "<pad>",
        "</s>",
        "<s>",
        "<unk>",
    }
    assert len({tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id}) == 3
    # Bytes never seen in the corpus still encode (byte-level), and decode back.
    assert tokenizer.decode(tokenizer("ünïcödé ✓")["input_ids"]) == "ünïcödé ✓"


def test_chat_template_renders_turns_and_generation_prompt(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == "<|user|>Hi</s><|assistant|>Hello</s>"
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|user|>Hi</s><|assistant|>"


def test_causal_lm_loads_and_generates(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.num_parameters() < 100_000
    batch = tokenizer(["The model explains", "A cat"], return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=6, do_sample=True, top_k=0, min_new_tokens=6)
    assert out.shape == (2, batch["input_ids"].shape[1] + 6)
    assert (out < len(tokenizer)).all()


def test_sequence_classification_head_loads_with_one_label(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    assert model.config.pad_token_id == tokenizer.pad_token_id  # needed to find each sequence's last token
    batch = tokenizer(["a short one", "a much longer sentence than the other"], return_tensors="pt", padding=True)
    with torch.no_grad():
        scores = model(**batch).logits
    assert scores.shape == (2, 1)
    assert torch.isfinite(scores).all()


def test_build_is_deterministic(tmp_path):
    from trainer.ml.tiny import build_tiny_model

    a = build_tiny_model(tmp_path / "a", corpus=["alpha beta gamma"] * 20, vocab_size=300)
    b = build_tiny_model(tmp_path / "b", corpus=["alpha beta gamma"] * 20, vocab_size=300)
    assert json.loads((a / "tokenizer.json").read_text()) == json.loads((b / "tokenizer.json").read_text())
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
