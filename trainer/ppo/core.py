"""PPO arithmetic on tensors: masked statistics, whitening, log-probabilities, GAE, clipped losses, KL control.

No model, tokenizer or Django here: every function takes tensors and is unit-tested on hand-made examples.
Shapes: `(batch, response_length)` for per-token quantities, `mask` is 1 on response tokens (up to and including
EOS) and 0 on the padding after them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the positions where `mask` is 1."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor, *, unbiased: bool = True) -> torch.Tensor:
    """Variance over the masked positions (Bessel-corrected, as lm-human-preferences' whiten does)."""
    mean = masked_mean(values, mask)
    squares = masked_mean((values - mean) ** 2, mask)
    count = mask.sum()
    if unbiased and count > 1:
        squares = squares * count / (count - 1)
    return squares


def masked_whiten(
    values: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Scale to unit variance over the masked positions; `shift_mean=False` keeps the mean (reward whitening).

    Padding positions come back as 0 so they cannot leak into GAE.
    """
    mean = masked_mean(values, mask)
    whitened = (values - mean) * torch.rsqrt(masked_var(values, mask) + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """Log-probability of `tokens` under softmax(logits / temperature), the distribution they were sampled from.

    Dividing by the sampling temperature here too is one of the recipe's details: without it the ratio and the KL
    are computed against a different distribution than the one that produced the response.
    """
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return torch.gather(logp, -1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """Per-position entropy of softmax(logits / temperature)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def truncate_after_eos(
    responses: torch.Tensor, *, eos_token_id: int, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut each response after its first EOS (kept) and pad the rest.

    Returns (responses, mask, has_eos): mask is 1 up to and including the first EOS (everywhere when there is none),
    has_eos says which responses ended on their own, for the missing-EOS penalty.
    """
    is_eos = responses == eos_token_id
    # Number of EOS strictly before each position: a position is kept while none came before it.
    eos_before = torch.cumsum(is_eos.int(), dim=1) - is_eos.int()
    mask = (eos_before == 0).to(responses.dtype)
    truncated = torch.where(mask.bool(), responses, torch.full_like(responses, pad_token_id))
    return truncated, mask, is_eos.any(dim=1)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last response token (the one that receives the score) in each row."""
    return (mask.sum(dim=1) - 1).clamp(min=0).long()


def per_token_rewards(
    *, scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards per token: -β·(log π - log π_ref) at every token, plus the sequence's score on its last token.

    Returns (rewards, kl) where kl is the per-token log-ratio (masked), the quantity the KL controller tracks.
    """
    kl = (logprobs - ref_logprobs) * mask
    rewards = -beta * kl
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards, kl


def gae(
    *, rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each response; the episode ends at its last masked token.

    A_t = δ_t + gammaλ·A_{t+1}, δ_t = r_t + gamma·V_{t+1} - V_t, with V and A beyond the last token taken as 0.
    Returns (advantages, returns) with returns = advantages + values (the value target).
    """
    rewards = rewards * mask
    values = values * mask
    length = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(length)):
        if t + 1 < length:
            next_value, next_mask = values[:, t + 1], mask[:, t + 1]
        else:
            next_value, next_mask = torch.zeros_like(values[:, t]), torch.zeros_like(mask[:, t])
        delta = rewards[:, t] + gamma * next_value * next_mask - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage * next_mask) * mask[:, t]
        advantages[:, t] = next_advantage
    return advantages, (advantages + values) * mask


@dataclass(frozen=True)
class LossStats:
    loss: torch.Tensor
    clip_fraction: torch.Tensor
    approx_kl: torch.Tensor | None = None


def clipped_policy_loss(
    *,
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> LossStats:
    """PPO's clipped surrogate: mean of max(-A·r, -A·clip(r, 1-ε, 1+ε)) over response tokens.

    clip_fraction is the share of tokens where the clipped term was the larger one; approx_kl is ½·E[(log r)²],
    the estimator lm-human-preferences logs.
    """
    log_ratio = (logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return LossStats(
        loss=masked_mean(torch.maximum(unclipped, clipped), mask),
        clip_fraction=masked_mean((clipped > unclipped).float(), mask),
        approx_kl=0.5 * masked_mean(log_ratio**2, mask),
    )


def clipped_value_loss(
    *,
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range_value: float,
) -> LossStats:
    """½·max((V - R)², (V_clipped - R)²) with V_clipped = V_old + clip(V - V_old, ±ε_v)."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    return LossStats(
        loss=0.5 * masked_mean(torch.maximum(unclipped_loss, clipped_loss), mask),
        clip_fraction=masked_mean((clipped_loss > unclipped_loss).float(), mask),
    )


class FixedKLController:
    """β stays where it started."""

    def __init__(self, init_kl_coef: float):
        self.value = init_kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        return None


class AdaptiveKLController:
    """Ziegler et al. (2019): move β proportionally towards a target KL, the error clipped to ±20 %.

    β ← β·(1 + clip(KL/target - 1, -0.2, 0.2)·n_steps/horizon), n_steps being the episodes seen since the last update.
    """

    def __init__(self, init_kl_coef: float, *, target: float, horizon: int):
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
