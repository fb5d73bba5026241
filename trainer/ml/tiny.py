"""Tiny local models for tests, the demo and benches: a `tokenizers` BPE tokenizer and a random-weight Llama.

No machine here can reach a model hub, so everything that trains in CI starts from a folder this module writes.
The result loads with `AutoTokenizer`, `AutoModelForCausalLM` and `AutoModelForSequenceClassification(num_labels=1)`
like any hub checkpoint.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from pathlib import Path

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# Each message is "<|role|>content</s>"; a generation prompt opens the assistant turn. `{% generation %}` marks
# the assistant's tokens for trainers that train on completions only (assistant_only_loss).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}<|assistant|>{% generation %}{{ message['content'] }}</s>{% endgeneration %}"
    "{% else %}<|{{ message['role'] }}|>{{ message['content'] }}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_SUBJECTS = ["the model", "a reviewer", "the answer", "my friend", "the assistant", "our team", "the user", "a cat"]
_VERBS = ["explains", "writes", "prefers", "checks", "describes", "answers", "lists", "rejects"]
_OBJECTS = ["the question", "a short reply", "a long story", "the facts", "some code", "a poem", "the data", "it"]
_TAILS = ["clearly", "briefly", "in detail", "with care", "politely", "again", "quickly", "today"]


def default_corpus(n_sentences: int = 400, seed: int = 0) -> list[str]:
    """A few hundred plain English sentences, so the BPE merges cover ordinary words and punctuation."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_sentences):
        sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}"
        lines.append(sentence.capitalize() + rng.choice([".", "!", "?", "."]))
    lines.append("Question: what is 2 + 3? Answer: 5. Yes, no, maybe; good, bad, helpful, harmful.")
    return lines


def build_tiny_model(
    out_dir: Path,
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 512,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
) -> Path:
    """Train a byte-level BPE tokenizer on `corpus`, build a random-weight causal LM around it, save both.

    Returns `out_dir`. Deterministic for a given corpus and seed.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = list(corpus) if corpus is not None else default_corpus()

    special = [PAD, BOS, EOS, UNK, *ROLE_TOKENS]
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe_trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(itertools.chain(texts, [" ".join(ROLE_TOKENS)]), trainer=bpe_trainer)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=list(ROLE_TOKENS),
        padding_side="left",  # generation pads on the left; trainers set their own side when they need to
        model_max_length=512,
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's random state
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
