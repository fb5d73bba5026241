"""Prompts for PPO: read from a snapshot split, turned into token ids, batched with left padding for generation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def load_prompts(path: Path) -> list[str | list[dict]]:
    """The distinct prompts of a snapshot split (JSONL, one pair a line), in first-seen order.

    A prompt is a string (standard format) or a list of messages (conversational); several pairs share a prompt, and
    PPO only needs it once.
    """
    seen: set[str] = set()
    prompts: list[str | list[dict]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            prompt = json.loads(line).get("prompt")
            if not isinstance(prompt, str | list):
                raise ValueError(f"{Path(path).name} line {number}: 'prompt' must be a string or a list of messages.")
            key = json.dumps(prompt, sort_keys=True)
            if key not in seen:
                seen.add(key)
                prompts.append(prompt)
    return prompts


def encode_prompt(tokenizer, prompt: str | list[dict]) -> list[int]:
    """Token ids of a prompt as the policy should see it before answering.

    Messages go through the tokenizer's chat template with the generation prompt (the assistant turn opened); a
    tokenizer without a template gets the contents joined by newlines. A plain string is tokenized as it is, with the
    tokenizer's usual special tokens (BOS for most).
    """
    if isinstance(prompt, list):
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
            # The template writes its own special tokens; tokenizing must not add a second BOS.
            return list(tokenizer(text, add_special_tokens=False)["input_ids"])
        prompt = "\n".join(str(message.get("content", "")) for message in prompt)
    ids = list(tokenizer(prompt)["input_ids"])
    if not ids and tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id]  # an empty prompt still needs one position to predict from
    return ids


def encode_prompts(
    tokenizer, prompts: Sequence[str | list[dict]], *, max_query_length: int
) -> tuple[list[list[int]], int]:
    """Encoded prompts that fit in `max_query_length` tokens, and how many were dropped for being longer or empty.

    Longer prompts are dropped rather than cut, as the other run kinds drop pairs over max_length: a prompt cut at
    either end is a different question.
    """
    kept, dropped = [], 0
    for prompt in prompts:
        ids = encode_prompt(tokenizer, prompt)
        if not ids or len(ids) > max_query_length:
            dropped += 1
            continue
        kept.append(ids)
    return kept, dropped


def left_pad(sequences: Sequence[Sequence[int]], *, pad_token_id: int):
    """(input_ids, attention_mask) tensors with every query right-aligned, as generation needs."""
    import torch

    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids, mask
