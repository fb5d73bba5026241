"""The policy's value head, sampling vs. training log-probabilities, the reference, and the reward model's score."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.ppo import core
from trainer.ppo.data import left_pad
from trainer.ppo.policy import PolicyWithValueHead, Reference, RewardScorer, pack_right, sample

PROMPTS = ["The model writes", "A cat prefers", "My friend lists", "The user"]


@pytest.fixture
def policy_and_queries(sft_policy_dir):
    tokenizer = AutoTokenizer.from_pretrained(sft_policy_dir)
    policy = PolicyWithValueHead(AutoModelForCausalLM.from_pretrained(sft_policy_dir)).eval()
    query_ids, query_mask = left_pad([tokenizer(p)["input_ids"] for p in PROMPTS * 4], pad_token_id=0)
    return tokenizer, policy, query_ids, query_mask


def _rollout(policy, tokenizer, query_ids, query_mask, *, temperature):
    torch.manual_seed(0)
    raw, sampled_logprobs = sample(
        policy.lm,
        query_ids,
        query_mask,
        response_length=8,
        temperature=temperature,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    responses, mask, has_eos = core.truncate_after_eos(
        raw, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return responses, mask, has_eos, sampled_logprobs


def test_logprobs_recomputed_for_training_are_those_of_sampling_at_the_same_temperature(policy_and_queries):
    tokenizer, policy, query_ids, query_mask = policy_and_queries
    responses, mask, has_eos, sampled = _rollout(policy, tokenizer, query_ids, query_mask, temperature=0.7)
    assert has_eos.any()  # the fine-tuned policy ends its sentences: truncation is exercised
    with torch.no_grad():
        logits, _ = policy(torch.cat([query_ids, responses], 1), torch.cat([query_mask, mask], 1), response_length=8)
    same = core.logprobs_from_logits(logits, responses, temperature=0.7)
    other = core.logprobs_from_logits(logits, responses, temperature=1.0)
    on = mask.bool()
    # Incremental decoding with a KV cache and one full forward agree to float precision...
    assert torch.allclose(same[on], sampled[on], atol=1e-4)
    # ...and only at the sampling temperature: scoring at another one is a different policy.
    assert (other[on] - sampled[on]).abs().mean() > 0.05


def test_the_value_head_starts_at_zero_and_leaves_the_logits_alone(policy_and_queries):
    tokenizer, policy, query_ids, query_mask = policy_and_queries
    responses, mask, _, _ = _rollout(policy, tokenizer, query_ids, query_mask, temperature=1.0)
    ids, attention = torch.cat([query_ids, responses], 1), torch.cat([query_mask, mask], 1)
    with torch.no_grad():
        logits, values = policy(ids, attention, response_length=8)
        plain = policy.lm(input_ids=ids, attention_mask=attention, position_ids=(attention.cumsum(1) - 1).clamp(min=0))
    assert values.shape == responses.shape and torch.count_nonzero(values) == 0
    assert torch.allclose(logits, plain.logits[:, -9:-1], atol=1e-5)


def test_lora_reference_is_the_base_model_with_adapters_off(policy_and_queries, sft_policy_dir):
    from peft import LoraConfig, get_peft_model

    _, _, query_ids, query_mask = policy_and_queries
    base = AutoModelForCausalLM.from_pretrained(sft_policy_dir).eval()
    lora_lm = get_peft_model(
        AutoModelForCausalLM.from_pretrained(sft_policy_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    with torch.no_grad():  # LoRA's B starts at zero; move it so the adapted policy differs from its base
        for name, parameter in lora_lm.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    policy = PolicyWithValueHead(lora_lm).eval()
    reference = Reference(policy, lora=True)
    ids = torch.cat([query_ids, query_ids[:, -3:]], 1)
    attention = torch.cat([query_mask, torch.ones_like(query_mask[:, -3:])], 1)
    with torch.no_grad():
        policy_logits, _ = policy(ids, attention, response_length=3)
        ref_logits = reference.logits(ids, attention, response_length=3)
        base_logits = base(input_ids=ids, attention_mask=attention, position_ids=(attention.cumsum(1) - 1).clamp(min=0))
    assert torch.allclose(ref_logits, base_logits.logits[:, -4:-1], atol=1e-5)
    assert not torch.allclose(policy_logits, ref_logits, atol=1e-2)
    # Leaving the context turns the adapters back on.
    with torch.no_grad():
        again, _ = policy(ids, attention, response_length=3)
    assert torch.allclose(again, policy_logits)


def test_pack_right_moves_real_tokens_together():
    ids, mask = pack_right(
        torch.tensor([[0, 0, 5, 6], [7, 8, 9, 10]]),
        torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]]),
        torch.tensor([[11, 2, 0], [12, 13, 14]]),
        torch.tensor([[1, 1, 0], [1, 1, 1]]),
        pad_token_id=0,
    )
    assert ids.tolist() == [[5, 6, 11, 2, 0, 0, 0], [7, 8, 9, 10, 12, 13, 14]]
    assert mask.tolist() == [[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]]


def test_reward_scorer_reads_the_token_share_from_a_saved_checkpoint(poem_reward_dir, sft_policy_dir, poem_token_id):
    tokenizer = AutoTokenizer.from_pretrained(sft_policy_dir)
    scorer = RewardScorer(
        poem_reward_dir / "checkpoint", tokenizer=tokenizer, device=torch.device("cpu"), dtype=torch.float32
    )
    queries = [tokenizer("The model writes")["input_ids"], tokenizer("A cat")["input_ids"]]
    query_ids, query_mask = left_pad(queries, pad_token_id=tokenizer.pad_token_id)
    poem, eos, pad = poem_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    other = tokenizer(" story", add_special_tokens=False)["input_ids"][0]
    responses = torch.tensor([[poem, poem, eos, pad], [other, poem, other, other]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    scores = scorer.score(query_ids, query_mask, responses, mask)
    expected = torch.tensor([2 / (len(queries[0]) + 3), 1 / (len(queries[1]) + 4)])
    assert torch.allclose(scores, expected, rtol=0.01)
