"""The two sampling backends of generate runs (trainer.ml.generate): `transformers` and `vllm` go through the same
batches, seeds and recording code, so on fixed seeds they record the same responses, rewards and KLs.

vLLM needs CUDA and is not installed here: the `vllm` module is replaced by an engine with vLLM's interface
(`LLM(model=..., tensor_parallel_size=..., ...)`, `generate(prompts, SamplingParams, use_tqdm=...)` returning
RequestOutputs whose CompletionOutputs carry `index`, `token_ids` and `finish_reason`, the stop token kept in
`token_ids` as vLLM keeps it) that samples each request alone, unpadded, with transformers on the CPU. Greedy
sampling makes both backends' tokens the same, so any difference would be in what the backends do around them."""

import sys
import types

import pytest
import torch

from tests.trainer.ml.test_generate import config, write_prompts
from trainer.ml import generate as gen


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class FakeEngine:
    instances: list["FakeEngine"] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.model, self.tokenizer = gen.load_model(kwargs["model"])
        self.params: list[FakeSamplingParams] = []
        FakeEngine.instances.append(self)

    def generate(self, prompts, params, use_tqdm=True):
        self.params.append(params)
        stop = set(params.stop_token_ids)
        outputs = []
        for prompt in prompts:
            ids = torch.tensor([prompt["prompt_token_ids"]])
            with torch.inference_mode():
                sequences = self.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=False,
                    max_new_tokens=params.max_tokens,
                    num_return_sequences=params.n,
                    eos_token_id=sorted(stop),
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            completions = []
            for index, row in enumerate(sequences[:, ids.shape[1] :].tolist()):
                cut = next((i + 1 for i, token in enumerate(row) if token in stop), len(row))
                reason = "stop" if row[cut - 1] in stop else "length"
                completions.append(types.SimpleNamespace(index=index, token_ids=tuple(row[:cut]), finish_reason=reason))
            # vLLM does not promise the completions' order within a request: give them back reversed.
            outputs.append(types.SimpleNamespace(outputs=completions[::-1]))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeEngine
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    FakeEngine.instances.clear()
    return module


def test_both_backends_record_the_same_responses_rewards_and_kls(fake_vllm, sft_policy_dir, tiny_model_dir, tmp_path):
    prompt_file = write_prompts(tmp_path / "p.jsonl")
    settings = {"temperature": 0.0, "n": 1, "max_new_tokens": 6, "batch_size": 2, "seed": 3}
    settings["reference_model"] = str(tiny_model_dir)

    def run(backend: str) -> dict:
        torch.manual_seed(0)  # the tiny reward model's score head is new at each load: the same one for both
        return gen.generate(
            config=config(sft_policy_dir, backend=backend, **settings),
            prompt_file=prompt_file,
            reward_model_dir=tiny_model_dir,
        )

    plain, engine = run("transformers"), run("vllm")

    assert engine == plain
    responses = plain["responses"]
    assert len(responses) == 5 and {r["finish_reason"] for r in responses} == {"stop", "length"}
    assert all(r["reward"] is not None and r["kl"] is not None for r in responses)

    # The engine was built and called as the run asked: one per run, its batches seeded as transformers' are.
    (made,) = FakeEngine.instances
    assert made.kwargs["model"] == str(sft_policy_dir) and made.kwargs["tensor_parallel_size"] == 1
    assert (made.kwargs["seed"], made.kwargs["generation_config"]) == (3, "vllm")
    assert made.kwargs["gpu_memory_utilization"] == gen.VLLM_MEMORY_SHARED  # transformers scores beside it
    assert [p.seed for p in made.params] == [gen.batch_seed(3, number) for number in range(3)]
    first = made.params[0]
    assert (first.n, first.max_tokens, first.temperature, first.top_p, first.top_k) == (1, 6, 0.0, 1.0, -1)
    eos = gen.eos_token_ids(*gen.load_model(str(sft_policy_dir)))
    assert first.stop_token_ids == sorted(eos)


def test_a_stop_token_left_out_by_the_engine_is_put_back_and_completions_keep_their_order(fake_vllm, sft_policy_dir):
    """Whether an engine keeps the stop token in token_ids or not, a stopped response is counted up to and
    including its EOS, as generate() counts it; a request's completions are recorded in their index order."""
    settings = gen.SamplingSettings(n=2, temperature=1.0, max_new_tokens=4)
    sampler = gen.VllmSampler(str(sft_policy_dir), settings, eos={2})

    def completion(index, tokens, reason):
        return types.SimpleNamespace(index=index, token_ids=tokens, finish_reason=reason)

    sampler.engine.generate = lambda prompts, params, use_tqdm: [
        types.SimpleNamespace(outputs=[completion(1, (5, 6, 2), "stop"), completion(0, (5, 6), "stop")]),
        types.SimpleNamespace(outputs=[completion(0, (5, 6, 7, 8), "length"), completion(1, (9, 2), "stop")]),
    ]
    assert sampler.sample([[1], [1]], seed=0) == [[5, 6, 2], [5, 6, 2], [5, 6, 7, 8], [9, 2]]
    assert sampler.engine.kwargs["gpu_memory_utilization"] == gen.VLLM_MEMORY_ALONE
