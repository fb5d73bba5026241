"""PPO training against a reward-model checkpoint, following "The N Implementation Details of RLHF with PPO".

Huang, Liu, von Werra (ICLR blog track 2024) reproduce OpenAI's lm-human-preferences (Ziegler et al. 2019); this
module keeps that recipe's loop:

1. sample a response per prompt from the policy at `temperature` (no top-k/top-p), truncate it after EOS;
2. score query + response with the reward model, normalised by the initial policy's score mean and std; responses
   without EOS lose `missing_eos_penalty` (the recipe's "no truncation token" penalty, opt-in here);
3. per-token reward -beta * (log pi - log pi_ref), the score added on the last token; beta from Ziegler's adaptive
   controller (or fixed);
4. optional reward whitening (scale only), GAE(gamma, lambda) on the value head's estimates, whitened advantages;
5. `ppo_epochs` passes over shuffled minibatches: clipped policy loss + vf_coef * clipped value loss, Adam with
   eps=1e-5 and a learning rate annealed linearly to 0; log-probabilities always at the sampling temperature;
6. dropout stays off throughout (every model is in eval mode), so rollout and update see the same network.

Where this departs from the recipe:
- The value head shares the policy's trunk (as in lm-human-preferences) instead of a separate critic initialised
  from the reward model (the later TL;DR "N+" recipe): one model in memory instead of two, at the cost of value
  gradients reaching the trunk (scaled by vf_coef).
- Reward normalisation happens here, at the start of PPO, on the initial policy's samples for up to
  NORMALISATION_PROMPTS training prompts; the recipe bakes the same gain/bias into the reward model after training
  it. TRL's RewardTrainer leaves the scale free, so we cannot rely on it. `normalize_reward=false` turns it off.
- Reward and advantage whitening are over the whole rollout batch, not per minibatch: with the small minibatches a
  CPU or a single GPU allows, per-minibatch statistics are noisy. Identical when mini_batch_size equals
  rollout_batch_size.
- The truncation token is the tokenizer's EOS (the recipe used a period for its stylistic tasks). A response without
  it loses `missing_eos_penalty` from its normalised score (the recipe set the score to -1 instead), and the penalty
  is off unless configured: chat models end on EOS by themselves, tiny test models often do not.
- The reward model and the policy must share a tokenizer (checked): the policy's tokens are scored as they are.
- Adam is PyTorch's (epsilon outside the square root), not TensorFlow's; the blog shows this makes early updates
  larger. We keep the small learning rates the recipe uses instead of re-implementing the TF variant.
- Prompts are the snapshot's, of any length up to max_length - response_length (longer ones are dropped), left-padded
  per rollout, rather than fixed-length 64-token queries.
- With LoRA the reference is the same network with its adapters disabled (no second copy); the saved checkpoint is
  the merged model, so it loads with AutoModelForCausalLM like a full fine-tune.
- `batch_size` is the micro-batch of every forward pass (memory); gradients over a minibatch are accumulated across
  micro-batches so the update equals a full-minibatch step, and gradient_accumulation_steps is not used.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.ml.checkpointing import (
    RESUME_DIRNAME,
    OnCheckpoint,
    intermediate_steps,
    no_checkpoints,
    read_resume_marker,
    resume_state_dir,
    step_folder,
    write_resume_marker,
)
from trainer.ppo import core
from trainer.ppo.data import encode_prompts, left_pad, load_prompts
from trainer.ppo.policy import PolicyWithValueHead, Reference, RewardScorer, sample
from trainer.progress import Progress

# Prompts the initial policy answers to fix the reward normalisation (the recipe used a few thousand).
NORMALISATION_PROMPTS = 256
# At most this many prompts are answered for each evaluation (before and after training).
EVAL_PROMPTS = 512


@dataclass
class Rollout:
    query_ids: torch.Tensor
    query_mask: torch.Tensor
    responses: torch.Tensor
    mask: torch.Tensor  # 1 on response tokens up to and including EOS
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    entropy: torch.Tensor
    raw_scores: torch.Tensor  # the reward model's output
    scores: torch.Tensor  # normalised, minus the missing-EOS penalty: what PPO maximises
    has_eos: torch.Tensor

    @property
    def kl(self) -> torch.Tensor:
        """Per-sequence KL estimate to the reference: sum over tokens of log pi - log pi_ref."""
        return ((self.logprobs - self.ref_logprobs) * self.mask).sum(1)


class _Runner:
    """Everything one run holds: models, tokenizer, device, config. Methods are the loop's steps."""

    def __init__(self, *, config: dict, reward_model_dir: Path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from trainer.ml.devices import pick_device

        self.config = config
        device = pick_device()
        self.device = torch.device(device.type)
        self.autocast_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(device.dtype)
        self.frozen_dtype = self.autocast_dtype or torch.float32  # frozen models need no fp32 master weights

        self.tokenizer = AutoTokenizer.from_pretrained(config["base_model"])
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.tokenizer.eos_token_id is None:
            raise ValueError(
                f"The tokenizer of {config['base_model']} has no EOS token; PPO truncates responses at it."
            )
        self.eos, self.pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id

        lm = AutoModelForCausalLM.from_pretrained(config["base_model"], dtype=torch.float32)
        if config["lora"]:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=config["lora_r"], lora_alpha=config["lora_alpha"], target_modules="all-linear", task_type="CAUSAL_LM"
            )
            lm = get_peft_model(lm, lora)
        self.policy = PolicyWithValueHead(lm).to(self.device).eval()
        self.reference = Reference(self.policy, lora=config["lora"], dtype=self.frozen_dtype)
        self.scorer = RewardScorer(
            Path(reward_model_dir) / "checkpoint", tokenizer=self.tokenizer, device=self.device, dtype=self.frozen_dtype
        )
        self.score_mean, self.score_std = 0.0, 1.0

    def autocast(self):
        return torch.autocast(
            device_type=self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        )

    def _chunks(self, n: int, size: int) -> Iterator[slice]:
        for start in range(0, n, size):
            yield slice(start, min(start + size, n))

    @torch.no_grad()
    def rollout(self, queries: list[list[int]]) -> Rollout:
        """Sample, truncate, score and analyse one response per query, in micro-batches of batch_size."""
        cfg, length = self.config, self.config["response_length"]
        query_ids, query_mask = left_pad(queries, pad_token_id=self.pad)
        query_ids, query_mask = query_ids.to(self.device), query_mask.to(self.device)
        parts: dict[str, list[torch.Tensor]] = {}
        for rows in self._chunks(len(queries), cfg["batch_size"]):
            q_ids, q_mask = query_ids[rows], query_mask[rows]
            with self.autocast():
                raw, _ = sample(
                    self.policy.lm,
                    q_ids,
                    q_mask,
                    response_length=length,
                    temperature=cfg["temperature"],
                    eos_token_id=self.eos,
                    pad_token_id=self.pad,
                )
                responses, mask, has_eos = core.truncate_after_eos(raw, eos_token_id=self.eos, pad_token_id=self.pad)
                ids = torch.cat([q_ids, responses], dim=1)
                attention = torch.cat([q_mask, mask], dim=1)
                logits, values = self.policy(ids, attention, response_length=length)
                ref_logits = self.reference.logits(ids, attention, response_length=length)
                raw_scores = self.scorer.score(q_ids, q_mask, responses, mask)
            t = cfg["temperature"]
            chunk = {
                "responses": responses,
                "mask": mask.float(),
                "has_eos": has_eos,
                "logprobs": core.logprobs_from_logits(logits, responses, temperature=t),
                "ref_logprobs": core.logprobs_from_logits(ref_logits, responses, temperature=t),
                "entropy": core.entropy_from_logits(logits, temperature=t),
                "values": values.float() * mask,
                "raw_scores": raw_scores,
            }
            for key, value in chunk.items():
                parts.setdefault(key, []).append(value)
        joined = {key: torch.cat(values) for key, values in parts.items()}
        scores = (joined["raw_scores"] - self.score_mean) / self.score_std
        if cfg["missing_eos_penalty"] is not None:
            scores = scores - cfg["missing_eos_penalty"] * (~joined["has_eos"]).float()
        return Rollout(query_ids=query_ids, query_mask=query_mask, scores=scores, **joined)

    def fit_reward_normalisation(self, queries: list[list[int]]) -> None:
        """Gain and bias that give the initial policy's scores mean 0 and std 1 (the recipe's reward normalisation)."""
        raw = self.rollout(queries[:NORMALISATION_PROMPTS]).raw_scores
        self.score_mean = float(raw.mean())
        self.score_std = max(float(raw.std()) if raw.numel() > 1 else 1.0, 1e-5)

    def evaluate(self, queries: list[list[int]]) -> dict[str, float]:
        """Mean reward-model score and KL to the reference of fresh samples on `queries`."""
        batch = self.rollout(queries[:EVAL_PROMPTS])
        return {
            "reward_mean": float(batch.raw_scores.mean()),
            "kl": float(batch.kl.mean()),
            "response_length": float(batch.mask.sum(1).mean()),
            "eos_fraction": float(batch.has_eos.float().mean()),
            "entropy": float(core.masked_mean(batch.entropy, batch.mask)),
        }

    def update(self, batch: Rollout, *, beta: float, optimizer, scaler) -> dict[str, float]:
        """Rewards, GAE and `ppo_epochs` passes of clipped PPO updates over minibatches of the rollout."""
        cfg, length = self.config, self.config["response_length"]
        rewards, _ = core.per_token_rewards(
            scores=batch.scores, logprobs=batch.logprobs, ref_logprobs=batch.ref_logprobs, mask=batch.mask, beta=beta
        )
        if cfg["whiten_rewards"]:
            rewards = core.masked_whiten(rewards, batch.mask, shift_mean=False)
        advantages, returns = core.gae(
            rewards=rewards, values=batch.values, mask=batch.mask, gamma=cfg["gamma"], lam=cfg["lam"]
        )
        advantages = core.masked_whiten(advantages, batch.mask)

        n = batch.responses.shape[0]
        totals = dict.fromkeys(("policy_loss", "value_loss", "clip_fraction", "value_clip_fraction", "approx_kl"), 0.0)
        minibatches = 0
        for _ in range(cfg["ppo_epochs"]):
            for minibatch in torch.randperm(n, device=self.device).split(cfg["mini_batch_size"]):
                optimizer.zero_grad(set_to_none=True)
                tokens = batch.mask[minibatch].sum().clamp(min=1)
                for rows in minibatch.split(cfg["batch_size"]):
                    mask = batch.mask[rows]
                    ids = torch.cat([batch.query_ids[rows], batch.responses[rows]], dim=1)
                    attention = torch.cat([batch.query_mask[rows], mask.long()], dim=1)
                    with self.autocast():
                        logits, values = self.policy(ids, attention, response_length=length)
                    logprobs = core.logprobs_from_logits(logits, batch.responses[rows], temperature=cfg["temperature"])
                    pg = core.clipped_policy_loss(
                        logprobs=logprobs,
                        old_logprobs=batch.logprobs[rows],
                        advantages=advantages[rows],
                        mask=mask,
                        clip_range=cfg["clip_range"],
                    )
                    vf = core.clipped_value_loss(
                        values=values.float(),
                        old_values=batch.values[rows],
                        returns=returns[rows],
                        mask=mask,
                        clip_range_value=cfg["clip_range_value"],
                    )
                    # Each micro-batch's masked means weighted by its share of tokens: the sum is the minibatch's mean.
                    share = mask.sum() / tokens
                    scaler.scale((pg.loss + cfg["vf_coef"] * vf.loss) * share).backward()
                    for key, value in (
                        ("policy_loss", pg.loss),
                        ("value_loss", vf.loss),
                        ("clip_fraction", pg.clip_fraction),
                        ("value_clip_fraction", vf.clip_fraction),
                        ("approx_kl", pg.approx_kl),
                    ):
                        totals[key] += float(value.detach() * share)
                scaler.step(optimizer)
                scaler.update()
                minibatches += 1
        stats = {key: value / minibatches for key, value in totals.items()}
        stats["loss"] = stats["policy_loss"] + cfg["vf_coef"] * stats["value_loss"]
        return stats


def _total_steps(config: dict, n_prompts: int) -> int:
    """PPO iterations: max_steps when set (as in transformers), else enough rollouts to see every prompt `epochs` times."""
    if config["max_steps"] is not None:
        return config["max_steps"]
    return max(1, math.ceil(config["epochs"] * n_prompts / config["rollout_batch_size"]))


class PromptBatches:
    """Endless rollout batches of prompt indices: each pass over the prompts in a new order. Its state (the
    generator's and the prompts still pending) is saved with a checkpoint, so a resumed run draws what the
    uninterrupted one would have."""

    def __init__(self, n_prompts: int, batch_size: int, *, seed: int):
        self.n_prompts, self.batch_size = n_prompts, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.pending: list[int] = []

    def __next__(self) -> list[int]:
        while len(self.pending) < self.batch_size:
            self.pending += torch.randperm(self.n_prompts, generator=self.generator).tolist()
        batch, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size :]
        return batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "pending": list(self.pending)}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.pending = list(state["pending"])


def train_ppo(
    *,
    config: dict,
    train_file: Path,
    validation_file: Path,
    reward_model_dir: Path,
    output_dir: Path,
    progress: Progress,
    on_checkpoint: OnCheckpoint = no_checkpoints,
    resume_from: Path | None = None,
) -> dict:
    """Train a policy with PPO on the train split's prompts against `reward_model_dir/checkpoint`.

    Calls `progress` after every PPO iteration (one rollout and its updates) with the iteration's metrics, and once
    at the end with the evaluation prefixed "eval_"; RunCancelled raised by it propagates. Saves the policy and
    tokenizer to `output_dir/checkpoint` (the value head to `value_head.pt` beside them) and returns the evaluation:
    mean reward before and after on the validation prompts, KL to the reference, and the training curve's ends.

    At the config's checkpoint steps (trainer.ml.checkpointing) the policy is saved like the final checkpoint in
    output_dir/checkpoints/step-N, with the loop's state (trainable weights, optimizer, scaler, KL controller,
    reward normalisation, prompt order, RNG) in its resume/ folder, and reported to `on_checkpoint`. `resume_from`
    (such a folder) continues from that state to the same total number of steps.
    """
    from transformers import set_seed

    from trainer.configs import validate_config

    config = validate_config("ppo", config)
    max_query = config["max_length"] - config["response_length"]  # >= 1: validate_config checks it
    set_seed(config["seed"])
    runner = _Runner(config=config, reward_model_dir=reward_model_dir)
    train_queries, dropped = encode_prompts(runner.tokenizer, load_prompts(train_file), max_query_length=max_query)
    if not train_queries:
        raise ValueError(f"No training prompt fits in max_length - response_length = {max_query} tokens.")
    eval_queries, _ = encode_prompts(runner.tokenizer, load_prompts(validation_file), max_query_length=max_query)
    eval_split = "validation" if eval_queries else "train"
    eval_queries = eval_queries or train_queries

    resumed = _load_resume_state(resume_from) if resume_from is not None else None
    if resumed is not None:
        # The normalisation and the "before" figures are the original run's: the resumed policy is not the initial one.
        runner.score_mean, runner.score_std = resumed["score_mean"], resumed["score_std"]
        before = resumed["before"]
    else:
        if config["normalize_reward"]:
            runner.fit_reward_normalisation(train_queries)
        before = runner.evaluate(eval_queries)

    total = _total_steps(config, len(train_queries))
    trainable = [p for p in runner.policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config["learning_rate"], eps=1e-5, weight_decay=0.0)
    scaler = torch.amp.GradScaler(runner.device.type, enabled=runner.autocast_dtype == torch.float16)
    if config["adaptive_kl"]:
        kl_ctl = core.AdaptiveKLController(
            config["init_kl_coef"], target=config["target_kl"], horizon=config["kl_horizon"]
        )
    else:
        kl_ctl = core.FixedKLController(config["init_kl_coef"])
    # A rollout larger than the prompt set answers some prompts twice (different samples), as epochs > 1 would.
    batches = PromptBatches(len(train_queries), config["rollout_batch_size"], seed=config["seed"])

    history: list[dict[str, float]] = []
    first_step = 1
    if resumed is not None:
        missing = _load_trainable(runner, resumed["trainable"])
        if missing:
            raise ValueError(f"The checkpoint to resume from lacks {len(missing)} trainable tensors: {missing[:3]}...")
        optimizer.load_state_dict(resumed["optimizer"])
        scaler.load_state_dict(resumed["scaler"])
        kl_ctl.value = resumed["kl_value"]
        batches.load_state_dict(resumed["batches"])
        history = [resumed["first_metrics"]] if resumed["first_metrics"] else []
        _set_rng_state(resumed["rng"])
        first_step = resumed["step"] + 1
    save_at = intermediate_steps(total, config.get("checkpoint_every"), after=first_step - 1)
    for step in range(first_step, total + 1):
        lr = config["learning_rate"] * (1.0 - (step - 1) / total)  # the recipe anneals linearly to 0
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = runner.rollout([train_queries[i] for i in next(batches)])
        beta = kl_ctl.value
        stats = runner.update(batch, beta=beta, optimizer=optimizer, scaler=scaler)
        kl = float(batch.kl.mean())
        kl_ctl.update(kl, n_steps=batch.responses.shape[0])
        metrics = {
            "reward_mean": float(batch.raw_scores.mean()),
            "reward_std": float(batch.raw_scores.std()) if batch.raw_scores.numel() > 1 else 0.0,
            "score_mean": float(batch.scores.mean()),
            "kl": kl,
            "non_score_reward": -beta * kl,
            "entropy": float(core.masked_mean(batch.entropy, batch.mask)),
            "response_length": float(batch.mask.sum(1).mean()),
            "eos_fraction": float(batch.has_eos.float().mean()),
            "beta": beta,
            "learning_rate": lr,
            **stats,
        }
        history.append(metrics)
        progress(step=step, total=total, metrics=metrics)
        if step in save_at:
            folder = step_folder(Path(output_dir), step)
            _save_intermediate(
                runner,
                folder,
                state={
                    "step": step,
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "kl_value": kl_ctl.value,
                    "batches": batches.state_dict(),
                    "score_mean": runner.score_mean,
                    "score_std": runner.score_std,
                    "before": before,
                    "first_metrics": history[0],
                },
            )
            on_checkpoint(step=step, folder=folder, metrics=metrics)

    after = runner.evaluate(eval_queries)
    progress(step=total, total=total, metrics={f"eval_{key}": value for key, value in after.items()})
    _save(runner, Path(output_dir) / "checkpoint")
    return {
        "reward_mean_initial": before["reward_mean"],
        "reward_mean_final": after["reward_mean"],
        "reward_gain": after["reward_mean"] - before["reward_mean"],
        "kl_final": after["kl"],
        "response_length_initial": before["response_length"],
        "response_length_final": after["response_length"],
        "eos_fraction_final": after["eos_fraction"],
        "entropy_final": after["entropy"],
        "train_reward_mean_first": history[0]["reward_mean"] if history else None,
        "train_reward_mean_last": history[-1]["reward_mean"] if history else None,
        "train_kl_last": history[-1]["kl"] if history else None,
        "beta_final": kl_ctl.value,
        "reward_normalisation_mean": runner.score_mean,
        "reward_normalisation_std": runner.score_std,
        "steps": total,
        "n_prompts_train": len(train_queries),
        "n_prompts_dropped": dropped,
        "n_prompts_eval": min(len(eval_queries), EVAL_PROMPTS),
        "eval_split": eval_split,
    }


def _save(runner: _Runner, checkpoint: Path, *, keep_adapters: bool = False) -> None:
    checkpoint.mkdir(parents=True, exist_ok=True)
    lm = runner.policy.lm
    if runner.config["lora"]:
        # Mid-run the live model keeps its adapters (a merged copy is saved); at the end it is merged in place.
        lm = (copy.deepcopy(lm) if keep_adapters else lm).merge_and_unload()
    lm.save_pretrained(checkpoint)
    runner.tokenizer.save_pretrained(checkpoint)
    torch.save(runner.policy.value_head.state_dict(), checkpoint / "value_head.pt")
    (checkpoint / "value_head.json").write_text(
        json.dumps({"in_features": runner.policy.value_head.in_features, "shares_trunk_with": "policy"}) + "\n"
    )


RESUME_STATE_FILE = "ppo_state.pt"


def _save_intermediate(runner: _Runner, folder: Path, *, state: dict) -> None:
    """The policy as the final checkpoint is saved, plus resume/ppo_state.pt: what the loop needs to go on."""
    import shutil

    if folder.exists():  # left by an earlier attempt of this run that died while saving
        shutil.rmtree(folder)
    _save(runner, folder, keep_adapters=True)
    (folder / RESUME_DIRNAME).mkdir()
    trainable = {name: p.detach().cpu() for name, p in runner.policy.named_parameters() if p.requires_grad}
    torch.save(
        {**state, "trainable": trainable, "rng": _rng_state(), "format": 1}, folder / RESUME_DIRNAME / RESUME_STATE_FILE
    )
    write_resume_marker(folder, fmt="ppo", state_dir=RESUME_DIRNAME, step=state["step"])


def _load_resume_state(folder: Path) -> dict:
    marker = read_resume_marker(folder)
    if marker is None or marker.get("format") != "ppo":
        raise ValueError(f"{folder} is not a resumable PPO checkpoint")
    path = resume_state_dir(folder) / RESUME_STATE_FILE
    # Our own file, checked against the checkpoint's manifest before the run started; it holds NumPy's RNG state.
    return torch.load(path, map_location="cpu", weights_only=False)


def _load_trainable(runner: _Runner, trainable: dict) -> list[str]:
    """Copy the saved trainable tensors into the policy; the names of trainable tensors the file lacks."""
    params = dict(runner.policy.named_parameters())
    missing = [name for name, p in params.items() if p.requires_grad and name not in trainable]
    with torch.no_grad():
        for name, value in trainable.items():
            if name in params:
                params[name].copy_(value.to(params[name].device, params[name].dtype))
    return missing


def _rng_state() -> dict:
    import random

    import numpy as np

    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: dict) -> None:
    import random

    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
