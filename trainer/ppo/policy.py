"""The models PPO runs: the policy with its value head, the frozen reference, sampling, and the reward model's score.

Sequences are laid out as [left-padded query | response right-padded after EOS], so every response starts at the
same column and the logits that predict it are the last `response_length + 1` positions but one.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import torch
from torch import nn

from trainer.ppo import core


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each row's first real token, so left padding does not shift them (as generate does)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class PolicyWithValueHead(nn.Module):
    """A causal LM with a scalar value head on its last hidden state; the value shares the policy's trunk.

    The head is a single linear layer initialised to zero (weight and bias), the recipe's value-head initialisation:
    the first value estimates are 0 and the critic's early gradients do not shake the trunk.
    """

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        hidden_size = lm.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, response_length: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, values) at the positions that predict each response token: (B, R, V) and (B, R)."""
        output = self.lm(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids(attention_mask),
            output_hidden_states=True,
            logits_to_keep=response_length + 1,
            use_cache=False,
        )
        logits = output.logits[:, -response_length - 1 : -1]
        hidden = output.hidden_states[-1][:, -response_length - 1 : -1]
        # The head runs in float32 even under bf16 autocast: values feed GAE and a squared loss.
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            values = self.value_head(hidden.float()).squeeze(-1)
        return logits, values


class Reference:
    """The frozen initial policy. With LoRA it is the same model with its adapters switched off (no second copy)."""

    def __init__(self, policy: PolicyWithValueHead, *, lora: bool, dtype: torch.dtype | None = None):
        self._policy = policy
        self._copy = None
        if not lora:
            # Frozen, so it needs no float32 master weights: bf16 halves its memory on a GPU.
            self._copy = copy.deepcopy(policy.lm).eval().requires_grad_(False)
            if dtype is not None:
                self._copy.to(dtype)

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, response_length: int) -> torch.Tensor:
        with self._disabled_adapters():
            lm = self._copy if self._copy is not None else self._policy.lm
            output = lm(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids(attention_mask),
                logits_to_keep=response_length + 1,
                use_cache=False,
            )
        return output.logits[:, -response_length - 1 : -1]

    def _disabled_adapters(self):
        if self._copy is not None:
            return contextlib.nullcontext()
        return self._policy.lm.disable_adapter()


@torch.no_grad()
def sample(
    lm: nn.Module,
    query_ids: torch.Tensor,
    query_mask: torch.Tensor,
    *,
    response_length: int,
    temperature: float,
    eos_token_id: int,
    pad_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample up to `response_length` tokens per query from softmax(logits / temperature), nothing else.

    Our own loop rather than `generate`: no top-k, top-p, repetition penalty or minimum length can slip in from a
    checkpoint's generation_config, so the distribution sampled is exactly the one PPO scores. Returns the raw
    responses (B, R), padded after EOS once every row has finished, and the log-probability of each sampled token.
    """
    batch = query_ids.shape[0]
    mask = query_mask.clone()
    output = lm(input_ids=query_ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=True)
    tokens, logprobs = [], []
    finished = torch.zeros(batch, dtype=torch.bool, device=query_ids.device)
    for _ in range(response_length):
        logits = output.logits[:, -1, :].float() / temperature
        step_logp = torch.log_softmax(logits, dim=-1)
        token = torch.multinomial(step_logp.exp(), num_samples=1).squeeze(-1)
        token = torch.where(finished, torch.full_like(token, pad_token_id), token)
        tokens.append(token)
        logprobs.append(step_logp.gather(-1, token.unsqueeze(-1)).squeeze(-1))
        finished |= token == eos_token_id
        if bool(finished.all()):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        output = lm(
            input_ids=token.unsqueeze(-1),
            attention_mask=mask,
            position_ids=position_ids(mask)[:, -1:],
            past_key_values=output.past_key_values,
            use_cache=True,
        )
    responses = torch.full((batch, response_length), pad_token_id, dtype=torch.long, device=query_ids.device)
    sampled_logprobs = torch.zeros((batch, response_length), device=query_ids.device)
    responses[:, : len(tokens)] = torch.stack(tokens, dim=1)
    sampled_logprobs[:, : len(tokens)] = torch.stack(logprobs, dim=1)
    return responses, sampled_logprobs


class RewardScorer:
    """Scores query + response with a reward-model checkpoint (AutoModelForSequenceClassification, num_labels=1).

    Each sequence is repacked right-padded ([query][response] then padding), the layout TRL's RewardTrainer trained
    on, and the model's own pooling reads the score at the last non-padding token: the EOS that RewardTrainer
    appends to every completion, or the last token of a response that was cut off.
    """

    def __init__(self, checkpoint: Path, *, tokenizer, device: torch.device, dtype: torch.dtype):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        checkpoint = Path(checkpoint)
        rm_tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        if rm_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise ValueError(
                f"The reward model at {checkpoint} has a different tokenizer from the policy; PPO scores the policy's "
                "tokens directly, so both must come from base models sharing one tokenizer."
            )
        self.model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=1, dtype=dtype)
        self.model.to(device).eval().requires_grad_(False)
        self.pad_token_id = self.model.config.get_text_config().pad_token_id
        if self.pad_token_id is None:
            self.pad_token_id = tokenizer.pad_token_id
            self.model.config.pad_token_id = self.pad_token_id

    @torch.no_grad()
    def score(
        self,
        query_ids: torch.Tensor,
        query_mask: torch.Tensor,
        responses: torch.Tensor,
        response_mask: torch.Tensor,
    ) -> torch.Tensor:
        input_ids, attention_mask = pack_right(
            query_ids, query_mask, responses, response_mask, pad_token_id=self.pad_token_id
        )
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits[:, 0].float()


def pack_right(
    query_ids: torch.Tensor,
    query_mask: torch.Tensor,
    responses: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    pad_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's real tokens (query then response) to the left and pad on the right."""
    ids = torch.cat([query_ids, responses], dim=1)
    mask = torch.cat([query_mask, response_mask.to(query_mask.dtype)], dim=1)
    # A stable sort on "is padding" brings real tokens first while keeping their order.
    order = torch.sort((mask == 0).int(), dim=1, stable=True).indices
    ids, mask = ids.gather(1, order), mask.gather(1, order)
    return torch.where(mask.bool(), ids, torch.full_like(ids, pad_token_id)), mask


def response_logprobs_and_entropy(
    logits: torch.Tensor, responses: torch.Tensor, *, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities and entropies of the responses, at the sampling temperature."""
    return (
        core.logprobs_from_logits(logits, responses, temperature=temperature),
        core.entropy_from_logits(logits, temperature=temperature),
    )
