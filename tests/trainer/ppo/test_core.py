"""PPO arithmetic against hand-computed examples: GAE, whitening, the KL controller, clipped losses, EOS handling."""

import math

import numpy as np
import pytest
import torch

from trainer.ppo import core


def test_gae_matches_a_hand_computed_example():
    # Row 0: three tokens. Row 1: two tokens then padding whose garbage must not leak in.
    rewards = torch.tensor([[1.0, 0.0, 2.0], [1.0, 3.0, 99.0]])
    values = torch.tensor([[0.5, 1.0, 0.0], [0.2, 0.4, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = core.gae(rewards=rewards, values=values, mask=mask, gamma=0.9, lam=0.8)
    # Row 0: δ2 = 2, A2 = 2; δ1 = 0 + 0.9·0 - 1 = -1, A1 = -1 + 0.72·2 = 0.44; δ0 = 1 + 0.9·1 - 0.5 = 1.4,
    # A0 = 1.4 + 0.72·0.44 = 1.7168. Row 1 ends at t=1: A1 = 3 - 0.4 = 2.6; A0 = 1 + 0.36 - 0.2 + 0.72·2.6 = 3.032.
    expected = torch.tensor([[1.7168, 0.44, 2.0], [3.032, 2.6, 0.0]])
    assert torch.allclose(advantages, expected, atol=1e-5)
    assert torch.allclose(returns, expected + values * mask, atol=1e-5)


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value():
    gen = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(4, 6, generator=gen), torch.randn(4, 6, generator=gen)
    mask = torch.ones(4, 6)
    advantages, _ = core.gae(rewards=rewards, values=values, mask=mask, gamma=1.0, lam=1.0)
    reward_to_go = torch.flip(torch.cumsum(torch.flip(rewards, [1]), 1), [1])
    assert torch.allclose(advantages, reward_to_go - values, atol=1e-5)


def test_whitening_over_masked_positions():
    values = torch.tensor([[2.0, 4.0, 6.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    # mean 4, unbiased std 2 (as numpy's ddof=1), padding comes back as 0.
    assert np.std([2.0, 4.0, 6.0], ddof=1) == pytest.approx(2.0)
    assert torch.allclose(core.masked_whiten(values, mask), torch.tensor([[-1.0, 0.0, 1.0, 0.0]]), atol=1e-6)
    assert torch.allclose(
        core.masked_whiten(values, mask, shift_mean=False), torch.tensor([[3.0, 4.0, 5.0, 0.0]]), atol=1e-6
    )


def test_adaptive_kl_controller_moves_beta_towards_the_target_with_clipped_error():
    def after(kl):
        controller = core.AdaptiveKLController(0.2, target=6.0, horizon=10000)
        controller.update(kl, n_steps=512)
        return controller.value

    assert after(12.0) == pytest.approx(0.2 * (1 + 0.2 * 512 / 10000))  # error 1.0 clipped to +0.2
    assert after(6.6) == pytest.approx(0.2 * (1 + 0.1 * 512 / 10000))  # error 0.1, in range
    assert after(0.0) == pytest.approx(0.2 * (1 - 0.2 * 512 / 10000))  # error -1.0 clipped to -0.2
    assert after(6.0) == pytest.approx(0.2)
    fixed = core.FixedKLController(0.05)
    fixed.update(100.0, n_steps=512)
    assert fixed.value == 0.05


def test_clipped_policy_loss_and_clip_fraction_on_a_crafted_example():
    ratios = torch.tensor([[1.5, 0.5, 1.1, 1.5, 0.5, 3.0]])
    advantages = torch.tensor([[1.0, 1.0, -1.0, -1.0, -1.0, 50.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]])  # the last token is padding
    logprobs = torch.log(ratios).requires_grad_(True)
    stats = core.clipped_policy_loss(
        logprobs=logprobs, old_logprobs=torch.zeros_like(ratios), advantages=advantages, mask=mask, clip_range=0.2
    )
    # Per token max(-A·r, -A·clip(r)): -1.2 (clipped), -0.5, 1.1, 1.5, 0.8 (clipped) → mean 1.7 / 5.
    assert stats.loss.item() == pytest.approx(0.34)
    assert stats.clip_fraction.item() == pytest.approx(0.4)
    expected_kl = 0.5 * sum(math.log(r) ** 2 for r in [1.5, 0.5, 1.1, 1.5, 0.5]) / 5
    assert stats.approx_kl.item() == pytest.approx(expected_kl, rel=1e-5)
    stats.loss.backward()
    # Clipped tokens (and padding) pass no gradient; the others pass -A·r/5.
    expected_grad = torch.tensor([[0.0, -0.5 / 5, 1.1 / 5, 1.5 / 5, 0.0, 0.0]])
    assert torch.allclose(logprobs.grad, expected_grad, atol=1e-6)


def test_clipped_value_loss_and_clip_fraction_on_a_crafted_example():
    stats = core.clipped_value_loss(
        values=torch.tensor([[0.5, -0.1, 0.3, 9.0]]),
        old_values=torch.zeros(1, 4),
        returns=torch.tensor([[1.0, 1.0, -1.0, 0.0]]),
        mask=torch.tensor([[1.0, 1.0, 1.0, 0.0]]),
        clip_range_value=0.2,
    )
    # Token 0 clipped to 0.2: max(0.25, 0.64) = 0.64; token 1 inside the range: 1.21; token 2: max(1.69, 1.44).
    assert stats.loss.item() == pytest.approx(0.5 * (0.64 + 1.21 + 1.69) / 3)
    assert stats.clip_fraction.item() == pytest.approx(1 / 3)


def test_logprobs_and_entropy_use_the_temperature_scaled_distribution():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]])
    tokens = torch.tensor([[0, 2]])
    for temperature in (1.0, 0.7, 2.0):
        probs = torch.softmax(logits / temperature, dim=-1)
        expected = torch.log(torch.stack([probs[0, 0, 0], probs[0, 1, 2]])).unsqueeze(0)
        got = core.logprobs_from_logits(logits, tokens, temperature=temperature)
        assert torch.allclose(got, expected, atol=1e-6)
        entropy = core.entropy_from_logits(logits, temperature=temperature)
        assert torch.allclose(entropy, -(probs * probs.log()).sum(-1), atol=1e-6)
    # A different temperature is a different distribution: the detail matters.
    assert not torch.allclose(
        core.logprobs_from_logits(logits, tokens, temperature=0.7),
        core.logprobs_from_logits(logits, tokens, temperature=1.0),
    )


def test_truncate_after_eos_keeps_the_eos_and_pads_the_rest():
    responses = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 9, 9, 9]])
    truncated, mask, has_eos = core.truncate_after_eos(responses, eos_token_id=2, pad_token_id=0)
    assert truncated.tolist() == [[5, 2, 0, 0], [5, 6, 7, 8], [2, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert has_eos.tolist() == [True, False, True]
    assert core.last_token_index(mask).tolist() == [1, 3, 0]


def test_per_token_rewards_put_the_score_on_the_last_token_and_the_kl_penalty_everywhere():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -5.0]])
    ref_logprobs = torch.tensor([[-1.5, -2.0, -2.0], [-2.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, kl = core.per_token_rewards(
        scores=torch.tensor([10.0, 20.0]), logprobs=logprobs, ref_logprobs=ref_logprobs, mask=mask, beta=0.1
    )
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, -1.0], [1.0, 0.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.0, 10.1], [-0.1, 20.0, 0.0]]))
