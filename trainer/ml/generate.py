"""Sampling a prompt file with one model: batched, reproducible for a seed, and optional scoring of each response by
a reward model and by its KL to a reference model (Django-free; torch imported inside).

Two backends sample (config "backend"): `transformers` (TransformersSampler: left-padded `generate` on the run's
device) and `vllm` (VllmSampler: a vLLM engine over `tensor_parallel_size` GPUs). Both return each batch's generated
token ids; the batches, their seeds and what is recorded (record_batch: text, token count, finish reason, and the
tensors the reward model and the KL read) are the same code for both.

The prompt file is JSONL, one `{"id", "prompt" | "messages", "stratum", "category"}` per line. `messages` prompts go
through the tokenizer's chat template with the assistant turn opened; `prompt` strings are tokenized as they are.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer.progress import Progress, null_progress

if TYPE_CHECKING:
    import torch


class PromptFileError(ValueError):
    """A prompt file this code cannot sample: the line and what is wrong with it are named."""


@dataclass(frozen=True)
class SamplingSettings:
    n: int = 1
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 42
    batch_size: int = 8

    @classmethod
    def from_config(cls, config: dict) -> SamplingSettings:
        return cls(**{name: config[name] for name in cls.__dataclass_fields__ if config.get(name) is not None})


def read_prompts(path: Path) -> list[dict]:
    """The prompt file's lines as dicts with "id", "prompt" or "messages", "stratum" and "category"."""
    prompts, seen = [], set()
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PromptFileError(f"line {number}: not JSON ({exc.msg}).") from exc
            if not isinstance(row, dict) or not isinstance(row.get("id"), str | int):
                raise PromptFileError(f'line {number}: an object with an "id" is expected.')
            messages, prompt = row.get("messages"), row.get("prompt")
            if not (isinstance(messages, list) and messages) and not (isinstance(prompt, str) and prompt):
                raise PromptFileError(f'line {number}: "prompt" (text) or "messages" (a list) is expected.')
            prompt_id = str(row["id"])
            if prompt_id in seen:
                raise PromptFileError(f"line {number}: id {prompt_id!r} appears twice.")
            seen.add(prompt_id)
            prompts.append(
                {
                    "id": prompt_id,
                    "prompt": prompt if isinstance(prompt, str) else "",
                    "messages": messages if isinstance(messages, list) and messages else None,
                    "stratum": str(row.get("stratum") or ""),
                    "category": str(row.get("category") or ""),
                }
            )
    return prompts


def encode_prompt(tokenizer, prompt: dict) -> list[int]:
    """The token ids the model continues: the chat template with the assistant turn opened for `messages`, else the
    text as the tokenizer encodes it (its own special tokens included)."""
    if prompt.get("messages"):
        text = tokenizer.apply_chat_template(prompt["messages"], add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt["prompt"])["input_ids"])


def load_model(path: str, *, device=None, sequence_classification: bool = False):
    """(model, tokenizer) in eval mode on the run's device: bf16 (or fp16) weights on a GPU, fp32 on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from trainer.ml.devices import pick_device

    device = device or pick_device()
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(device.dtype, torch.float32)
    tokenizer = load_tokenizer(path)
    if sequence_classification:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.to(device.type).eval().requires_grad_(False)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if not sequence_classification:
        neutral_generation_config(model, tokenizer)
    return model, tokenizer


def load_tokenizer(path: str):
    """The checkpoint's tokenizer as sampling uses it: left padding, EOS as the pad token when it has none."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def neutral_generation_config(model, tokenizer) -> None:
    """Replace the checkpoint's generation_config.json by one that keeps only its special tokens. generate() fills
    every setting a call leaves unset from the model's generation config: without this, a top_k, repetition penalty
    or minimum length saved with a checkpoint would change what a run samples behind its settings' back."""
    from transformers import GenerationConfig

    eos = sorted(eos_token_ids(model, tokenizer))
    model.generation_config = GenerationConfig(
        eos_token_id=eos[0] if len(eos) == 1 else eos,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )


def eos_token_ids(model, tokenizer) -> set[int]:
    """Every id that ends a response: the generation config's (an int or a list) and the tokenizer's."""
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    for value in configured if isinstance(configured, list | tuple) else [configured]:
        if value is not None:
            ids.add(int(value))
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def checkpoint_eos_token_ids(path: str, tokenizer) -> set[int]:
    """eos_token_ids of a checkpoint without loading its weights: the generation config transformers would give the
    model (its generation_config.json, else one made from config.json) and the tokenizer's."""
    from types import SimpleNamespace

    from transformers import AutoConfig, GenerationConfig

    try:
        configured = GenerationConfig.from_pretrained(path)
    except OSError:
        configured = GenerationConfig.from_model_config(AutoConfig.from_pretrained(path))
    return eos_token_ids(SimpleNamespace(generation_config=configured), tokenizer)


def generation_config(model, tokenizer, settings: SamplingSettings):
    """A GenerationConfig with what the run asked for, and transformers' default top-k (50) turned off: with the
    neutral model config of load_model, the run's settings are the whole sampling distribution."""
    from transformers import GenerationConfig

    sampling = settings.temperature > 0
    eos = sorted(eos_token_ids(model, tokenizer))
    return GenerationConfig(
        do_sample=sampling,
        temperature=settings.temperature if sampling else None,
        top_p=settings.top_p if sampling else None,
        top_k=0 if sampling else None,
        max_new_tokens=settings.max_new_tokens,
        num_return_sequences=settings.n,
        eos_token_id=eos[0] if len(eos) == 1 else eos,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )


def batch_seed(seed: int, index: int) -> int:
    """The seed of one batch: a function of the run's seed and the batch's place only, so a batch samples the same
    tokens whatever the batches before it did."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def left_pad(rows: list[list[int]], *, pad_token_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def right_pad(rows: list[list[int]], *, pad_token_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


def batches_by_length(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Prompt indices in batches of similar length (longest first: a memory problem shows at the first batch)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _finish(generated: list[int], eos: set[int]) -> tuple[int, str]:
    """(token count up to and including the first EOS, "stop"), or (all of them, "length") when none came."""
    for position, token in enumerate(generated):
        if token in eos:
            return position + 1, "stop"
    return len(generated), "length"


@dataclass
class Sampled:
    """One batch's responses, kept as tensors for scoring: `sequences` is generate's output (prompt left-padded,
    response after it) and `response_mask` marks each response's tokens up to and including its EOS."""

    prompt_index: list[int]  # per row
    sample: list[int]
    sequences: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    prompt_ids: list[list[int]]
    response_ids: list[list[int]]


class TransformersSampler:
    """The `transformers` backend: `generate()` on the run's device, one call per batch of left-padded prompts,
    seeded per batch (batch_seed)."""

    def __init__(self, model, tokenizer, settings: SamplingSettings):
        self.model, self.tokenizer = model, tokenizer
        self.device = model.device
        self.gen_config = generation_config(model, tokenizer, settings)
        self.eos = eos_token_ids(model, tokenizer)

    def sample(self, rows: list[list[int]], *, seed: int) -> list[list[int]]:
        """The generated ids after each prompt, `n` rows per prompt in order (padding after an EOS included)."""
        import torch

        ids, mask = left_pad(rows, pad_token_id=self.tokenizer.pad_token_id, device=self.device)
        torch.manual_seed(seed)
        with torch.inference_mode():
            sequences = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=self.gen_config)
        return sequences[:, ids.shape[1] :].tolist()


# The share of each GPU a vLLM engine may take: alone, or beside the transformers models that score its responses.
VLLM_MEMORY_ALONE = 0.85
VLLM_MEMORY_SHARED = 0.5


class VllmSampler:
    """The `vllm` backend (CUDA, vLLM installed; the worker refuses it otherwise: trainer.ml.compute): one engine
    over `tensor_parallel_size` GPUs samples each batch of token-id prompts with the run's settings, seeded per
    batch. The engine ignores the checkpoint's generation_config.json (generation_config="vllm"), as the
    transformers backend does (neutral_generation_config): the run's settings are the whole distribution.

    `gpu_memory_utilization` is the share of each GPU the engine may take: less when transformers models (the
    reward model, the reference, the policy for the KL) share the GPU with it."""

    def __init__(self, path: str, settings: SamplingSettings, *, eos: set[int], tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.85):  # fmt: skip
        from vllm import LLM, SamplingParams

        self.settings, self.eos = settings, sorted(eos)
        self.params = SamplingParams
        self.engine = LLM(
            model=str(path),
            tokenizer=str(path),
            tensor_parallel_size=int(tensor_parallel_size),
            seed=int(settings.seed),
            dtype="auto",
            generation_config="vllm",
            gpu_memory_utilization=gpu_memory_utilization,
        )

    def sampling_params(self, *, seed: int):
        sampling = self.settings.temperature > 0
        return self.params(
            n=self.settings.n,
            temperature=self.settings.temperature if sampling else 0.0,
            top_p=self.settings.top_p if sampling else 1.0,
            top_k=-1,  # no top-k, as the transformers backend (top_k=0 there)
            max_tokens=self.settings.max_new_tokens,
            seed=seed,
            stop_token_ids=self.eos,
            skip_special_tokens=True,
        )

    def sample(self, rows: list[list[int]], *, seed: int) -> list[list[int]]:
        """The generated ids after each prompt, `n` rows per prompt in order, each ending with its EOS when it
        stopped on one (vLLM may leave a stop token out of token_ids: it is put back, as generate() keeps it)."""
        params = self.sampling_params(seed=seed)
        outputs = self.engine.generate([{"prompt_token_ids": row} for row in rows], params, use_tqdm=False)
        generated = []
        for output in outputs:
            for completion in sorted(output.outputs, key=lambda c: c.index):
                tokens = list(completion.token_ids)
                if completion.finish_reason == "stop" and (not tokens or tokens[-1] not in self.eos):
                    tokens.append(self.eos[0])
                generated.append(tokens)
        return generated


def record_batch(tokenizer, *, generated: list[list[int]], encoded, indices, settings, eos, device):
    """What every backend's batch becomes: per-response dicts ("prompt_index", "sample", "text", "token_count",
    "finish_reason") and the Sampled tensors the reward model and the KL read (prompt left-padded, response after
    it, right-padded), from the generated ids of each row (n per prompt, in order)."""
    import torch

    ids, mask = left_pad([encoded[i] for i in indices], pad_token_id=tokenizer.pad_token_id, device="cpu")
    responses, _ = right_pad(generated, pad_token_id=tokenizer.pad_token_id, device="cpu")
    sequences = torch.cat([ids.repeat_interleave(settings.n, dim=0), responses], dim=1).to(device)
    results, rows_prompt, rows_sample, prompt_ids, response_ids = [], [], [], [], []
    response_mask = torch.zeros(responses.shape, dtype=torch.long)  # filled on the CPU
    for row, tokens in enumerate(generated):
        prompt_index, sample = indices[row // settings.n], row % settings.n
        count, reason = _finish(tokens, eos)
        response_mask[row, :count] = 1
        results.append(
            {
                "prompt_index": prompt_index,
                "sample": sample,
                "text": tokenizer.decode(tokens[:count], skip_special_tokens=True),
                "token_count": count,
                "finish_reason": reason,
            }
        )
        rows_prompt.append(prompt_index)
        rows_sample.append(sample)
        prompt_ids.append(encoded[prompt_index])
        response_ids.append(tokens[:count])
    attention_mask = torch.cat([mask.repeat_interleave(settings.n, dim=0), response_mask], dim=1).to(device)
    return results, Sampled(
        rows_prompt, rows_sample, sequences, attention_mask, response_mask.to(device), prompt_ids, response_ids
    )


def sample_prompts(
    model,
    tokenizer,
    prompts: list[dict],
    settings: SamplingSettings,
    *,
    progress: Progress = null_progress,
    on_batch: Callable[[list[dict], Sampled], None] | None = None,
    sampler=None,
) -> list[dict]:
    """Every prompt's `n` responses, in the prompt file's order: {"prompt_index", "sample", "text", "token_count",
    "finish_reason"} each. `progress` is called after each batch (step = batches done); it may raise RunCancelled.
    `sampler` is the backend (TransformersSampler on `model` when None, or VllmSampler); the batches, their seeds
    and the recording (record_batch) are the same for every backend."""
    sampler = sampler or TransformersSampler(model, tokenizer, settings)
    device = model.device if model is not None else "cpu"
    encoded = [encode_prompt(tokenizer, prompt) for prompt in prompts]
    batches = batches_by_length([len(ids) for ids in encoded], settings.batch_size)
    eos = set(sampler.eos)
    results: list[dict] = []
    total_tokens = 0
    for number, indices in enumerate(batches):
        generated = sampler.sample([encoded[i] for i in indices], seed=batch_seed(settings.seed, number))
        batch, sampled = record_batch(
            tokenizer, generated=generated, encoded=encoded, indices=indices, settings=settings, eos=eos, device=device
        )
        if on_batch is not None:
            on_batch(batch, sampled)
        results.extend(batch)
        total_tokens += sum(r["token_count"] for r in batch)
        progress(
            step=number + 1,
            total=len(batches),
            metrics={"responses": float(len(results)), "mean_length": total_tokens / max(1, len(results))},
        )
    results.sort(key=lambda r: (r["prompt_index"], r["sample"]))
    return results


def response_logprobs(model, sampled: Sampled) -> torch.Tensor:
    """Per response, the sum of log p(token) over its sampled tokens (up to and including EOS) under `model`, from
    one forward pass over generate's own layout (prompt left-padded, positions counted from each row's first token);
    the prompt and the padding are masked out. Raw model distribution: no temperature or top-p."""
    import torch

    mask = sampled.attention_mask
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    width = sampled.response_mask.shape[1]
    with torch.inference_mode():
        # Only the logits that predict response tokens: the last `width + 1` positions, the last of them unused.
        logits = model(
            input_ids=sampled.sequences.to(model.device),
            attention_mask=mask.to(model.device),
            position_ids=positions.to(model.device),
            logits_to_keep=width + 1,
        ).logits[:, :-1]
        targets = sampled.sequences[:, -width:].to(model.device)
        token_logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return (token_logps * sampled.response_mask.to(model.device)).sum(dim=1).cpu()


class RewardScorer:
    """A reward-model run's checkpoint (AutoModelForSequenceClassification, num_labels=1) scoring prompt + response.

    Each sequence is packed right-padded, [prompt][response up to and including its EOS][padding], the layout TRL's
    RewardTrainer trained on, and the model's pooling reads the score at the last non-padding token. With the
    policy's tokenizer the policy's own ids are scored; with another one the prompt and the response text are
    encoded again (EOS appended to a finished response, as RewardTrainer appends it).
    """

    def __init__(self, checkpoint: str, *, policy_tokenizer, device=None):
        self.model, self.tokenizer = load_model(str(checkpoint), device=device, sequence_classification=True)
        self.same_tokenizer = self.tokenizer.get_vocab() == policy_tokenizer.get_vocab()
        self.pad_token_id = self.model.config.pad_token_id

    def score(self, results: list[dict], sampled: Sampled, prompts: list[dict]) -> list[float]:
        import torch

        rows = []
        for row, result in enumerate(results):
            if self.same_tokenizer:
                rows.append(sampled.prompt_ids[row] + sampled.response_ids[row])
                continue
            ids = encode_prompt(self.tokenizer, prompts[result["prompt_index"]])
            ids += self.tokenizer(result["text"], add_special_tokens=False)["input_ids"]
            if result["finish_reason"] == "stop" and self.tokenizer.eos_token_id is not None:
                ids.append(self.tokenizer.eos_token_id)
            rows.append(ids)
        ids, mask = right_pad(rows, pad_token_id=self.pad_token_id, device=self.model.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits
        return [float(value) for value in logits[:, 0].float().cpu()]


def generate(
    *,
    config: dict,
    prompt_file: Path,
    reward_model_dir: str | Path | None = None,
    progress: Progress = null_progress,
) -> dict:
    """Sample `prompt_file` with config["model"] (a folder or hub id to load) as config's settings say, score each
    response with the reward model and against config["reference_model"] when named.

    Returns {"responses": [{"id", "stratum", "category", "sample", "text", "token_count", "finish_reason", "reward",
    "kl"}...] in the file's order, "summary": see summarize(), "batches": how many generate calls}.
    """
    import torch

    from trainer.ml.common import quiet_libraries
    from trainer.ml.devices import pick_device

    quiet_libraries()
    settings = SamplingSettings.from_config(config)
    prompts = read_prompts(prompt_file)
    device = pick_device()
    if config.get("backend") == "vllm":
        # The engine samples; transformers loads the policy only when the KL needs its log-probabilities.
        tokenizer = load_tokenizer(config["model"])
        scoring = bool(reward_model_dir or config.get("reference_model"))
        sampler = VllmSampler(
            config["model"],
            settings,
            eos=checkpoint_eos_token_ids(config["model"], tokenizer),
            tensor_parallel_size=config.get("tensor_parallel_size") or 1,
            gpu_memory_utilization=VLLM_MEMORY_SHARED if scoring else VLLM_MEMORY_ALONE,
        )
        model = load_model(config["model"], device=device)[0] if config.get("reference_model") else None
    else:
        model, tokenizer = load_model(config["model"], device=device)
        sampler = TransformersSampler(model, tokenizer, settings)
    reference = None
    if config.get("reference_model"):
        reference, reference_tokenizer = load_model(config["reference_model"], device=device)
        if reference_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise ValueError(
                "The reference model has a different tokenizer from the sampled model: the KL is measured on the "
                "sampled tokens, so both must share one tokenizer."
            )
    scorer = RewardScorer(reward_model_dir, policy_tokenizer=tokenizer, device=device) if reward_model_dir else None
    scores: dict[tuple[int, int], dict[str, float]] = {}

    def score_batch(results: list[dict], sampled: Sampled) -> None:
        rewards = scorer.score(results, sampled, prompts) if scorer is not None else [None] * len(results)
        kls: list[float | None] = [None] * len(results)
        if reference is not None:
            kls = (response_logprobs(model, sampled) - response_logprobs(reference, sampled)).tolist()
        for result, reward, kl in zip(results, rewards, kls, strict=True):
            scores[(result["prompt_index"], result["sample"])] = {"reward": reward, "kl": kl}

    results = sample_prompts(
        model, tokenizer, prompts, settings, progress=progress, on_batch=score_batch, sampler=sampler
    )
    responses = []
    for result in results:
        prompt = prompts[result["prompt_index"]]
        responses.append(
            {
                "id": prompt["id"],
                "stratum": prompt["stratum"],
                "category": prompt["category"],
                "sample": result["sample"],
                "text": result["text"],
                "token_count": result["token_count"],
                "finish_reason": result["finish_reason"],
                **scores[(result["prompt_index"], result["sample"])],
            }
        )
    model = reference = scorer = sampler = None  # the weights go before the cache is emptied
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    batches = math.ceil(len(prompts) / settings.batch_size)
    return {"responses": responses, "summary": summarize(responses, prompts=len(prompts)), "batches": batches}


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def summarize(responses: list[dict], *, prompts: int) -> dict[str, Any]:
    """The run's figures: mean length (tokens), mean reward and KL (null when not measured), the share of responses
    cut at max_new_tokens, and the Spearman correlation of reward with length (null without rewards, or when either
    is constant)."""
    lengths = np.array([r["token_count"] for r in responses], dtype=float)
    rewards = [r.get("reward") for r in responses]
    kls = [r.get("kl") for r in responses]
    has_rewards = bool(responses) and all(value is not None for value in rewards)
    has_kl = bool(responses) and all(value is not None for value in kls)
    spearman = None
    if has_rewards and len(responses) > 1 and np.ptp(lengths) > 0 and np.ptp(np.array(rewards, dtype=float)) > 0:
        from scipy.stats import spearmanr

        spearman = _finite_or_none(spearmanr(np.array(rewards, dtype=float), lengths).statistic)
    return {
        "prompts": prompts,
        "responses": len(responses),
        "mean_length": _finite_or_none(lengths.mean()) if len(lengths) else None,
        "mean_reward": _finite_or_none(np.mean(rewards)) if has_rewards else None,
        "mean_kl": _finite_or_none(np.mean(kls)) if has_kl else None,
        "finish_length_share": (
            _finite_or_none(np.mean([r["finish_reason"] == "length" for r in responses])) if responses else None
        ),
        "reward_length_spearman": spearman,
    }


def leak_matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """Whether a text contains one of `patterns` as a whole word (or words), in any case. Patterns are literal text,
    not regular expressions; "whole" means no letter, digit or underscore right before or after the match, so
    "GPT" matches "GPT-4" and "(GPT)" but not "ChatGPT"."""
    words = sorted({p.strip() for p in patterns if isinstance(p, str) and p.strip()}, key=len, reverse=True)
    if not words:
        return lambda text: False
    regex = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)
    return lambda text: regex.search(text or "") is not None
