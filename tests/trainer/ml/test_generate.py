"""Sampling a prompt file (trainer.ml.generate) on the tiny models: text and chat prompts, n responses each, finish
reasons and token counts that agree with the tokens, the same output for the same seed, left padding that changes
nothing, and the reward and KL of each response checked against one sequence scored on its own."""

import json
import re

import numpy as np
import pytest

from tests.trainer.ml.synthetic import RecordingProgress
from trainer.configs import validate_config
from trainer.ml import generate as gen
from trainer.progress import RunCancelled

PROMPTS = [
    {"id": "t1", "prompt": "The model writes", "stratum": "usage", "category": "poems"},
    {"id": "t2", "prompt": "A reviewer checks the facts and", "stratum": "usage"},
    {"id": "m1", "messages": [{"role": "user", "content": "My friend explains"}], "stratum": "red_team"},
    {"id": "t3", "prompt": "The cat", "stratum": "synthetic", "category": "animals"},
    {
        "id": "m2",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Our team lists the data"},
        ],
        "stratum": "usage",
    },
]


def write_prompts(path, rows=PROMPTS):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def config(model_dir, **overrides):
    values = {"model": str(model_dir), "n": 2, "temperature": 1.0, "max_new_tokens": 12, "batch_size": 2, "seed": 3}
    return validate_config("generate", {**values, **overrides})


def test_every_prompt_gets_n_responses_in_file_order_with_counts_that_match_the_tokens(sft_policy_dir, tmp_path):
    settings = gen.SamplingSettings.from_config(config(sft_policy_dir, max_new_tokens=5))
    model, tokenizer = gen.load_model(str(sft_policy_dir))
    prompts = gen.read_prompts(write_prompts(tmp_path / "p.jsonl"))
    eos = gen.eos_token_ids(model, tokenizer)
    tokens = {}

    def keep(results, sampled):
        for row, result in enumerate(results):
            tokens[(result["prompt_index"], result["sample"])] = sampled.response_ids[row]

    progress = RecordingProgress()
    results = gen.sample_prompts(model, tokenizer, prompts, settings, progress=progress, on_batch=keep)

    assert [(r["prompt_index"], r["sample"]) for r in results] == [(i, s) for i in range(5) for s in (0, 1)]
    for result in results:
        ids = tokens[(result["prompt_index"], result["sample"])]
        assert result["token_count"] == len(ids) <= 5
        if result["finish_reason"] == "stop":  # counted up to and including the EOS, which ends it
            assert ids[-1] in eos and not set(ids[:-1]) & eos
        else:
            assert result["finish_reason"] == "length" and len(ids) == 5 and not set(ids) & eos
        assert result["text"] == tokenizer.decode(ids, skip_special_tokens=True)
        assert "</s>" not in result["text"]
    reasons = {r["finish_reason"] for r in results}
    assert reasons == {"stop", "length"}, reasons  # the SFT'd tiny model ends some sentences within 5 tokens
    assert [(c["step"], c["total"]) for c in progress.calls] == [(1, 3), (2, 3), (3, 3)]  # 5 prompts, 2 a batch
    assert progress.calls[-1]["metrics"]["responses"] == 10


def test_chat_prompts_go_through_the_template_with_the_assistant_turn_open(sft_policy_dir):
    _, tokenizer = gen.load_model(str(sft_policy_dir))
    ids = gen.encode_prompt(tokenizer, PROMPTS[4])
    assert tokenizer.decode(ids) == "<|system|>Be brief.</s><|user|>Our team lists the data</s><|assistant|>"
    assert tokenizer.decode(gen.encode_prompt(tokenizer, PROMPTS[0])) == "The model writes"


def test_the_same_seed_gives_the_same_responses_and_another_seed_others(sft_policy_dir, tmp_path):
    prompt_file = write_prompts(tmp_path / "p.jsonl")
    first = gen.generate(config=config(sft_policy_dir), prompt_file=prompt_file)["responses"]
    again = gen.generate(config=config(sft_policy_dir), prompt_file=prompt_file)["responses"]
    other = gen.generate(config=config(sft_policy_dir, seed=4), prompt_file=prompt_file)["responses"]
    assert first == again
    assert [r["text"] for r in first] != [r["text"] for r in other]
    assert [r["id"] for r in first] == ["t1", "t1", "t2", "t2", "m1", "m1", "t3", "t3", "m2", "m2"]
    assert first[4]["stratum"] == "red_team" and first[0]["category"] == "poems"


def test_left_padded_batches_write_what_each_prompt_writes_alone(sft_policy_dir, tmp_path):
    """Greedy decoding: batching prompts of different lengths (left padding) must not change a single token."""
    prompts = gen.read_prompts(write_prompts(tmp_path / "p.jsonl"))
    model, tokenizer = gen.load_model(str(sft_policy_dir))
    greedy = {"n": 1, "temperature": 0.0, "max_new_tokens": 10, "seed": 0}
    batched = gen.sample_prompts(model, tokenizer, prompts, gen.SamplingSettings(batch_size=5, **greedy))
    alone = gen.sample_prompts(model, tokenizer, prompts, gen.SamplingSettings(batch_size=1, **greedy))
    assert [r["text"] for r in batched] == [r["text"] for r in alone]
    assert len({r["text"] for r in batched}) > 1


def test_kl_is_zero_against_itself_and_matches_per_sequence_log_probabilities(sft_policy_dir, tiny_model_dir, tmp_path):
    import torch

    prompts = gen.read_prompts(write_prompts(tmp_path / "p.jsonl"))
    policy, tokenizer = gen.load_model(str(sft_policy_dir))
    reference, _ = gen.load_model(str(tiny_model_dir))
    batches = []
    gen.sample_prompts(
        policy, tokenizer, prompts, gen.SamplingSettings(n=2, temperature=1.0, max_new_tokens=8, batch_size=3),
        on_batch=lambda results, sampled: batches.append(sampled),
    )  # fmt: skip
    for sampled in batches:
        assert torch.equal(gen.response_logprobs(policy, sampled), gen.response_logprobs(policy, sampled))
        batched = gen.response_logprobs(reference, sampled)
        for row in range(len(sampled.prompt_ids)):  # the same sum from one unpadded sequence, by hand
            prompt, response = sampled.prompt_ids[row], sampled.response_ids[row]
            ids = torch.tensor([prompt + response])
            with torch.no_grad():
                logps = torch.log_softmax(reference(input_ids=ids).logits[0, :-1].float(), dim=-1)
            expected = logps[len(prompt) - 1 :].gather(-1, ids[0, len(prompt) :, None]).sum()
            assert batched[row].item() == pytest.approx(expected.item(), abs=1e-4)

    prompt_file = tmp_path / "p.jsonl"
    same = gen.generate(config=config(sft_policy_dir, reference_model=str(sft_policy_dir)), prompt_file=prompt_file)
    assert all(r["kl"] == 0.0 for r in same["responses"]) and same["summary"]["mean_kl"] == 0.0
    assert same["summary"]["mean_reward"] is None and all(r["reward"] is None for r in same["responses"])
    # The SFT'd policy puts far more mass on its own samples than the random model it came from.
    other = gen.generate(config=config(sft_policy_dir, reference_model=str(tiny_model_dir)), prompt_file=prompt_file)
    assert other["summary"]["mean_kl"] > 1.0


def test_rewards_are_the_reward_models_score_of_each_sequence_alone(sft_policy_dir, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    prompt_file = write_prompts(tmp_path / "p.jsonl")
    result = gen.generate(config=config(sft_policy_dir), prompt_file=prompt_file, reward_model_dir=tiny_model_dir)
    responses = result["responses"]
    scorer = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).eval()
    _, tokenizer = gen.load_model(str(sft_policy_dir))
    prompts = {p["id"]: p for p in gen.read_prompts(prompt_file)}
    for response in responses:
        ids = gen.encode_prompt(tokenizer, prompts[response["id"]])
        ids += tokenizer(response["text"], add_special_tokens=False)["input_ids"]
        ids += [tokenizer.eos_token_id] if response["finish_reason"] == "stop" else []
        with torch.no_grad():
            expected = scorer(input_ids=torch.tensor([ids])).logits[0, 0].item()
        assert response["reward"] == pytest.approx(expected, abs=1e-4)
    summary = result["summary"]
    assert summary["mean_reward"] == pytest.approx(np.mean([r["reward"] for r in responses]))
    from scipy.stats import spearmanr

    expected = spearmanr([r["reward"] for r in responses], [r["token_count"] for r in responses]).statistic
    assert summary["reward_length_spearman"] == pytest.approx(expected)
    assert summary["responses"] == 10 and summary["prompts"] == 5
    assert summary["mean_length"] == pytest.approx(np.mean([r["token_count"] for r in responses]))
    share = np.mean([r["finish_reason"] == "length" for r in responses])
    assert summary["finish_length_share"] == pytest.approx(share)


def test_a_cancel_stops_sampling_at_the_batch(sft_policy_dir, tmp_path):
    progress = RecordingProgress(cancel_at=2)
    with pytest.raises(RunCancelled):
        gen.generate(config=config(sft_policy_dir), prompt_file=write_prompts(tmp_path / "p.jsonl"), progress=progress)
    assert [c["step"] for c in progress.calls] == [1, 2]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2: not JSON"),
        ('{"prompt": "no id"}', 'line 2: an object with an "id"'),
        ('{"id": "x"}', 'line 2: "prompt" (text) or "messages"'),
        ('{"id": "t1", "prompt": "again"}', "line 2: id 't1' appears twice"),
    ],
)
def test_a_bad_prompt_line_is_named(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(PROMPTS[0]) + "\n" + line + "\n")
    with pytest.raises(gen.PromptFileError, match=re.escape(message)):
        gen.read_prompts(path)


def test_identity_leaks_are_whole_words_in_any_case():
    leaks = gen.leak_matcher(["GPT", "OpenAI", "Claude 3", "a.b", " "])
    assert leaks("I am gpt, a model") and leaks("Made by OPENAI.") and leaks("(GPT-4)") and leaks("claude 3 here")
    assert not leaks("ChatGPT says hi") and not leaks("OpenAIs") and not leaks("claude 30") and not leaks("")
    assert leaks("see a.b now") and not leaks("see axb now")  # literal text, not a regular expression
    assert not gen.leak_matcher([])("GPT")


def test_summary_without_scores_has_nulls():
    responses = [{"token_count": n, "finish_reason": "stop", "reward": None, "kl": None} for n in (3, 5)]
    summary = gen.summarize(responses, prompts=2)
    assert summary == {
        "prompts": 2,
        "responses": 2,
        "mean_length": 4.0,
        "mean_reward": None,
        "mean_kl": None,
        "finish_length_share": 0.0,
        "reward_length_spearman": None,
    }


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_checkpoints_own_generation_config_changes_nothing(sft_policy_dir, tmp_path, temperature):
    """top_k, a repetition penalty or a minimum length saved with a checkpoint must not slip into a run's sampling."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sft_policy_dir, copy)
    saved = json.loads((copy / "generation_config.json").read_text())
    saved.update({"repetition_penalty": 5.0, "top_k": 2, "min_new_tokens": 6, "no_repeat_ngram_size": 1})
    (copy / "generation_config.json").write_text(json.dumps(saved))
    prompt_file = write_prompts(tmp_path / "p.jsonl")
    settings = {"temperature": temperature, "max_new_tokens": 6, "n": 1}
    plain = gen.generate(config=config(sft_policy_dir, **settings), prompt_file=prompt_file)["responses"]
    odd = gen.generate(config=config(copy, **settings), prompt_file=prompt_file)["responses"]
    assert [r["text"] for r in odd] == [r["text"] for r in plain]
    assert any(r["finish_reason"] == "stop" for r in plain)  # min_new_tokens would have forbidden these
