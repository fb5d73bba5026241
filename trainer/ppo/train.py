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

Across processes (torch.distributed initialised by the launcher with world size > 1; trainer.ppo.distributed):
- every rank draws the same global prompt order and samples its contiguous share of each rollout batch
  (rollout_batch_size / world size prompts), with its own RNG (seed + rank);
- reward normalisation, reward and advantage whitening, the KL fed to the adaptive controller (and its n_steps) and
  every logged metric are over all ranks' rollouts, as one process holding them all would compute them;
- each minibatch is mini_batch_size rows in all, mini_batch_size / world size per rank; the loss is weighted by each
  rank's share of the minibatch's tokens and DistributedDataParallel averages the gradients, so a step follows the
  gradient of the global minibatch's token mean;
- rank 0 alone calls `progress` and `on_checkpoint` and writes checkpoints; the other ranks wait at a barrier.
  Both batch sizes must divide by the world size (checked at the start).
"""

from __future__ import annotations

import contextlib
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
from trainer.ppo import distributed as dist
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

        from trainer.ml.common import lora_config, model_init_kwargs
        from trainer.ml.devices import pick_device

        self.config = config
        device = pick_device()
        self.device = torch.device(device.type)
        if dist.is_distributed() and device.type == "cuda":
            import os

            # One GPU per rank: the launcher's LOCAL_RANK, else the rank modulo the GPUs this node has.
            local_rank = int(os.environ.get("LOCAL_RANK", dist.rank() % torch.cuda.device_count()))
            torch.cuda.set_device(local_rank)
            self.device = torch.device("cuda", local_rank)
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

        # The run's memory options, as the TRL kinds read them (trainer.ml.common): the weights' dtype (auto: float32
        # under the device's autocast), the attention kernel, LoRA's target modules, gradient checkpointing.
        load = model_init_kwargs(config=config, device=device)
        lm = AutoModelForCausalLM.from_pretrained(
            config["base_model"], dtype=load["dtype"], attn_implementation=load["attn_implementation"]
        )
        if config.get("gradient_checkpointing"):
            lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        if config["lora"]:
            from peft import get_peft_model

            lm = get_peft_model(lm, lora_config(config=config, task_type="CAUSAL_LM"))
        self.policy = PolicyWithValueHead(lm).to(self.device).eval()
        # The policy stays in eval mode (no dropout); transformers checkpoints a layer only in training mode, so the
        # update sets that flag on the checkpointed layers alone (their submodules, dropout included, stay in eval).
        self.checkpointed = [module for module in lm.modules() if getattr(module, "gradient_checkpointing", False)]
        self.reference = Reference(self.policy, lora=config["lora"], dtype=self.frozen_dtype)
        self.scorer = RewardScorer(
            Path(reward_model_dir) / "checkpoint", tokenizer=self.tokenizer, device=self.device, dtype=self.frozen_dtype
        )
        # What the update's forward and backward go through: DDP across ranks, the policy itself in one process.
        # Sampling, evaluation and saving use self.policy (no gradient, no collective).
        self.model = dist.wrap_model(self.policy, self.device)
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
        if not queries:  # a rank whose share of an evaluation is empty: no rows, zero in every global sum
            return self._empty_rollout()
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

    def _empty_rollout(self) -> Rollout:
        length, device = self.config["response_length"], self.device
        rows = torch.zeros((0, length), device=device)
        return Rollout(
            query_ids=torch.zeros((0, 0), dtype=torch.long, device=device),
            query_mask=torch.zeros((0, 0), dtype=torch.long, device=device),
            responses=torch.zeros((0, length), dtype=torch.long, device=device),
            mask=rows,
            logprobs=rows,
            ref_logprobs=rows,
            values=rows,
            entropy=rows,
            raw_scores=torch.zeros(0, device=device),
            scores=torch.zeros(0, device=device),
            has_eos=torch.zeros(0, dtype=torch.bool, device=device),
        )

    def fit_reward_normalisation(self, queries: list[list[int]]) -> None:
        """Gain and bias that give the initial policy's scores mean 0 and std 1 (the recipe's reward normalisation).

        Across ranks each answers its share of the prompts and the mean and std are over all the scores."""
        raw = self.rollout(dist.shard(queries[:NORMALISATION_PROMPTS])).raw_scores
        self.score_mean = dist.global_mean(raw)
        std = dist.global_std(raw)
        self.score_std = max(std if std is not None else 1.0, 1e-5)

    def evaluate(self, queries: list[list[int]]) -> dict[str, float]:
        """Mean reward-model score and KL to the reference of fresh samples on `queries` (shared across ranks)."""
        batch = self.rollout(dist.shard(queries[:EVAL_PROMPTS]))
        return {
            "reward_mean": dist.global_mean(batch.raw_scores),
            "kl": dist.global_mean(batch.kl),
            "response_length": dist.global_mean(batch.mask.sum(1)),
            "eos_fraction": dist.global_mean(batch.has_eos.float()),
            "entropy": float(dist.global_masked_mean(batch.entropy, batch.mask)),
        }

    def update(self, batch: Rollout, *, beta: float, optimizer, scaler) -> dict[str, float]:
        """Rewards, GAE and `ppo_epochs` passes of clipped PPO updates over minibatches of the rollout."""
        cfg = self.config
        rewards, _ = core.per_token_rewards(
            scores=batch.scores, logprobs=batch.logprobs, ref_logprobs=batch.ref_logprobs, mask=batch.mask, beta=beta
        )
        if cfg["whiten_rewards"]:
            rewards = dist.global_masked_whiten(rewards, batch.mask, shift_mean=False)
        advantages, returns = core.gae(
            rewards=rewards, values=batch.values, mask=batch.mask, gamma=cfg["gamma"], lam=cfg["lam"]
        )
        advantages = dist.global_masked_whiten(advantages, batch.mask)

        with self._checkpointing():
            return self._update(batch, advantages=advantages, returns=returns, optimizer=optimizer, scaler=scaler)

    @contextlib.contextmanager
    def _checkpointing(self):
        """Gradient checkpointing on for the update's forward and backward passes (a no-op without it)."""
        for layer in self.checkpointed:
            layer.training = True
        try:
            yield
        finally:
            for layer in self.checkpointed:
                layer.training = False

    def _update(self, batch: Rollout, *, advantages, returns, optimizer, scaler) -> dict[str, float]:
        cfg, length = self.config, self.config["response_length"]
        n = batch.responses.shape[0]
        world = dist.world_size()
        # Rows of a minibatch on this rank: the global minibatch is mini_batch_size rows over all ranks.
        mini_batch_size = cfg["mini_batch_size"] // world
        totals = dict.fromkeys(("policy_loss", "value_loss", "clip_fraction", "value_clip_fraction", "approx_kl"), 0.0)
        minibatches = 0
        for _ in range(cfg["ppo_epochs"]):
            for minibatch in torch.randperm(n, device=self.device).split(mini_batch_size):
                optimizer.zero_grad(set_to_none=True)
                # Tokens of the whole minibatch, every rank's: each micro-batch's loss is weighted by its share.
                tokens = dist.global_sum(batch.mask[minibatch].sum()).clamp(min=1)
                micro_batches = minibatch.split(cfg["batch_size"])
                for index, rows in enumerate(micro_batches):
                    mask = batch.mask[rows]
                    ids = torch.cat([batch.query_ids[rows], batch.responses[rows]], dim=1)
                    attention = torch.cat([batch.query_mask[rows], mask.long()], dim=1)
                    # DDP all-reduces the gradients at the minibatch's last backward only.
                    with dist.no_sync(self.model, skip=index < len(micro_batches) - 1), self.autocast():
                        logits, values = self.model(ids, attention, response_length=length)
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
                    loss = (pg.loss + cfg["vf_coef"] * vf.loss) * share
                    if world > 1:
                        loss = loss * world  # DDP averages over ranks; the shares already sum to 1 over all of them
                    with dist.no_sync(self.model, skip=index < len(micro_batches) - 1):
                        scaler.scale(loss).backward()
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
        totals = dist.global_metric_sums(totals)  # each rank holds its shares of the global token means
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

    Under torch.distributed (world size > 1, the process group initialised by the caller) every rank calls this with
    the same arguments; see the module's docstring for what is shared. Only rank 0 calls `progress` and
    `on_checkpoint` and writes to `output_dir`; every rank returns the same evaluation.
    """
    from transformers import set_seed

    from trainer.configs import validate_config

    config = validate_config("ppo", config)
    max_query = config["max_length"] - config["response_length"]  # >= 1: validate_config checks it
    world = dist.world_size()
    if world > 1 and config.get("strategy", "ddp") != "ddp":
        raise ValueError(f"PPO runs train with ddp across processes; strategy {config['strategy']} is not supported.")
    for field in ("rollout_batch_size", "mini_batch_size"):
        if config[field] % world:
            raise ValueError(f"{field} ({config[field]}) must be a multiple of the number of processes ({world}).")
    # Every rank samples its own responses: seed + rank (rank 0, and a single process, keep the config's seed).
    set_seed(config["seed"] + dist.rank())
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
        _restore_rng(resumed, seed=config["seed"])
        first_step = resumed["step"] + 1
    save_at = intermediate_steps(total, config.get("checkpoint_every"), after=first_step - 1)
    for step in range(first_step, total + 1):
        lr = config["learning_rate"] * (1.0 - (step - 1) / total)  # the recipe anneals linearly to 0
        for group in optimizer.param_groups:
            group["lr"] = lr
        # Every rank draws the same global batch of prompts and answers its contiguous share of it.
        batch = runner.rollout(dist.shard([train_queries[i] for i in next(batches)]))
        beta = kl_ctl.value
        stats = runner.update(batch, beta=beta, optimizer=optimizer, scaler=scaler)
        kl = dist.global_mean(batch.kl)
        kl_ctl.update(kl, n_steps=dist.global_count(batch.responses.shape[0]))
        reward_std = dist.global_std(batch.raw_scores)
        metrics = {
            "reward_mean": dist.global_mean(batch.raw_scores),
            "reward_std": reward_std if reward_std is not None else 0.0,
            "score_mean": dist.global_mean(batch.scores),
            "kl": kl,
            "non_score_reward": -beta * kl,
            "entropy": float(dist.global_masked_mean(batch.entropy, batch.mask)),
            "response_length": dist.global_mean(batch.mask.sum(1)),
            "eos_fraction": dist.global_mean(batch.has_eos.float()),
            "beta": beta,
            "learning_rate": lr,
            **stats,
        }
        history.append(metrics)
        if dist.is_main_process():
            progress(step=step, total=total, metrics=metrics)
        if step in save_at:
            folder = step_folder(Path(output_dir), step)
            # Every rank's generators: a resume on as many ranks draws what this run would have drawn.
            rng_by_rank = dist.gather_objects(_rng_state())
            dist.on_main_process(
                _save_intermediate,
                runner,
                folder,
                rng_by_rank=rng_by_rank,
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
            if dist.is_main_process():
                on_checkpoint(step=step, folder=folder, metrics=metrics)

    after = runner.evaluate(eval_queries)
    if dist.is_main_process():
        progress(step=total, total=total, metrics={f"eval_{key}": value for key, value in after.items()})
    dist.on_main_process(_save, runner, Path(output_dir) / "checkpoint")
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


def _save_intermediate(runner: _Runner, folder: Path, *, state: dict, rng_by_rank: list | None = None) -> None:
    """The policy as the final checkpoint is saved, plus resume/ppo_state.pt: what the loop needs to go on.

    `rng_by_rank` (several processes) holds every rank's RNG state, rank 0's first; "rng" stays this process's."""
    import shutil

    if folder.exists():  # left by an earlier attempt of this run that died while saving
        shutil.rmtree(folder)
    _save(runner, folder, keep_adapters=True)
    (folder / RESUME_DIRNAME).mkdir()
    trainable = {name: p.detach().cpu() for name, p in runner.policy.named_parameters() if p.requires_grad}
    extra = {"rng_by_rank": rng_by_rank} if rng_by_rank is not None and len(rng_by_rank) > 1 else {}
    torch.save(
        {**state, "trainable": trainable, "rng": _rng_state(), "format": 1, **extra},
        folder / RESUME_DIRNAME / RESUME_STATE_FILE,
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


def _restore_rng(resumed: dict, *, seed: int) -> None:
    """Each process's RNG as it was at the checkpoint: "rng" in one process, its own rank's entry of "rng_by_rank"
    across as many ranks as saved it. Resumed on another number of processes, each rank is seeded anew with
    seed + rank + 1000 * step (distinct, reproducible, not the uninterrupted run's samples)."""
    world, rank = dist.world_size(), dist.rank()
    by_rank = resumed.get("rng_by_rank")
    if by_rank is not None and len(by_rank) == world:
        _set_rng_state(by_rank[rank])
    elif world == 1 and by_rank is None:
        _set_rng_state(resumed["rng"])
    else:
        from transformers import set_seed

        set_seed(seed + rank + 1000 * resumed["step"])


def _set_rng_state(state: dict) -> None:
    import random

    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
