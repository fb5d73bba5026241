"""A real reward-model checkpoint whose score is the share of one token in the sequence, with hand-set weights.

It is an ordinary LlamaForSequenceClassification (num_labels=1) built on the tiny model's config and tokenizer and
saved with `save_pretrained`, so PPO loads it exactly as it loads a RewardTrainer checkpoint. The weights compute:

- every token embeds to [C, is_target, 0, ...]: the large constant C keeps RMSNorm's scale (nearly) the same for
  every position, so what follows stays (nearly) linear;
- layer 0's attention has zero queries and keys, hence uniform attention over the tokens seen so far, and its
  values read the is_target coordinate: at the last token it averages to the share of target tokens;
- o_proj writes that share to coordinate 2 (scaled back to [0, 1]); both MLPs and layer 1 write nothing;
- the score head reads coordinate 2 after the final norm, so score ~ share of target tokens (error < 1 %).
"""

from __future__ import annotations

import math
from pathlib import Path

C = 10.0


def build_token_reward_model(base_model_dir: Path, out_dir: Path, *, token_id: int) -> Path:
    """Save to `out_dir` a reward model scoring the fraction of `token_id` among the sequence's tokens."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(base_model_dir, num_labels=1)
    hidden = model.config.hidden_size
    root = math.sqrt(hidden)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        embed = model.model.embed_tokens.weight
        embed[:, 0] = C
        embed[token_id, 1] = 1.0
        for layer in model.model.layers:
            layer.input_layernorm.weight.fill_(1.0)
            layer.post_attention_layernorm.weight.fill_(1.0)
        attention = model.model.layers[0].self_attn
        # After the input norm a target token's coordinate 1 is root / sqrt(C^2 + 1); o_proj undoes that factor.
        attention.v_proj.weight[0, 1] = 1.0
        attention.o_proj.weight[2, 0] = math.sqrt(C**2 + 1) / root
        model.model.norm.weight.fill_(1.0)
        # The final norm divides by about C / root (the C coordinate dominates); the head multiplies it back.
        model.score.weight[0, 2] = C / root
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base_model_dir).save_pretrained(out_dir)
    return out_dir


def sft_tiny_model(base_model_dir: Path, out_dir: Path, *, steps: int = 60, seed: int = 0) -> Path:
    """Fine-tune the random tiny model on its own corpus for a few steps, as a stand-in for an SFT policy.

    A random-weight model samples every token with probability ~1/vocab, too rarely for PPO to find a preferred
    one in a few steps; after this it completes "The model writes" with "a poem politely!</s>" and the like (" poem"
    in about one answer in eight), the situation RLHF starts from.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.ml.tiny import default_corpus

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    tokenizer.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(base_model_dir)
    texts = [sentence + tokenizer.eos_token for sentence in default_corpus(400, seed=seed)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        batch = [texts[i] for i in torch.randint(len(texts), (32,)).tolist()]
        encoded = tokenizer(batch, return_tensors="pt", padding=True)
        labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
        model(**encoded, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    tokenizer.padding_side = "left"
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)
