"""PPO across processes: two ranks on torch.distributed's gloo backend (CPU), spawned by the tests themselves.

What is checked against one process holding every rollout:
- reward and advantage whitening, the KL fed to the adaptive controller and its coefficient after the update, and
  the global mean/std helpers (float64: to 1e-12; float32: to 1e-5 — the only difference is the order of additions);
- a DDP update step: two ranks updating on their halves of a rollout end with the weights of one process updating on
  the whole rollout (full-batch minibatches, so the comparison does not depend on how rows were shuffled);
- only rank 0 writes checkpoints, and the other ranks wait for it; a short two-process run finishes and its rank-0
  checkpoint loads.

Each process runs torch on one thread (OMP_NUM_THREADS=1): the machine's cores are shared.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from trainer.ppo import core
from trainer.ppo import distributed as dist

pytestmark = pytest.mark.multiprocess

WORLD = 2


# --- Spawning ------------------------------------------------------------------------------------------------------


def _entry(rank: int, world: int, init_file: str, fn, args: tuple) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    try:
        fn(rank, *args)
    finally:
        torch.distributed.destroy_process_group()


def spawn(tmp_path: Path, fn, *args, timeout: float = 180.0) -> None:
    """Run fn(rank, *args) in WORLD fresh processes joined in one gloo process group; a rank's exception fails here
    (torch.multiprocessing re-raises it and ends the other ranks), and so does a run past `timeout` seconds."""
    import torch.multiprocessing as mp

    init_file = tmp_path / "torch-distributed-init"
    init_file.unlink(missing_ok=True)
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # read by each child as it starts
    try:
        context = mp.spawn(_entry, args=(WORLD, str(init_file), fn, args), nprocs=WORLD, join=False)
        deadline = time.monotonic() + timeout
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                for process in context.processes:
                    if process.is_alive():
                        process.kill()
                pytest.fail(f"{fn.__name__} did not finish on {WORLD} ranks within {timeout:.0f} s")
    finally:
        if threads is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = threads


# --- The statistics ------------------------------------------------------------------------------------------------


def _rollouts(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Seven responses of up to six tokens (different lengths), with values, log-probabilities and scores."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([6, 2, 5, 1, 4, 6, 3])
    mask = (torch.arange(6).unsqueeze(0) < lengths.unsqueeze(1)).to(dtype)
    return {
        "mask": mask,
        "values": torch.randn(7, 6, generator=gen, dtype=dtype) * mask,
        "logprobs": torch.randn(7, 6, generator=gen, dtype=dtype) - 2.0,
        "ref_logprobs": torch.randn(7, 6, generator=gen, dtype=dtype) - 2.5,
        "scores": torch.randn(7, generator=gen, dtype=dtype) * 3.0 + 1.0,
    }


def _statistics(data: dict[str, torch.Tensor], *, beta: float) -> dict[str, torch.Tensor | float]:
    """What PPO's update and KL control compute from a rollout, with trainer.ppo.distributed's functions: the same
    code runs on every rank (on its rows) and in one process (on all of them)."""
    rewards, kl = core.per_token_rewards(
        scores=data["scores"],
        logprobs=data["logprobs"],
        ref_logprobs=data["ref_logprobs"],
        mask=data["mask"],
        beta=beta,
    )
    rewards = dist.global_masked_whiten(rewards, data["mask"], shift_mean=False)
    advantages, returns = core.gae(rewards=rewards, values=data["values"], mask=data["mask"], gamma=1.0, lam=0.95)
    whitened = dist.global_masked_whiten(advantages, data["mask"])
    sequence_kl = kl.sum(1)
    controller = core.AdaptiveKLController(beta, target=0.5, horizon=10)
    mean_kl = dist.global_mean(sequence_kl)
    controller.update(mean_kl, n_steps=dist.global_count(sequence_kl.shape[0]))
    mean, var = dist.global_masked_mean_var(advantages, data["mask"])
    return {
        "rewards": rewards,
        "advantages": whitened,
        "returns": returns,
        "kl_mean": mean_kl,
        "beta": controller.value,
        "score_mean": dist.global_mean(data["scores"]),
        "score_std": dist.global_std(data["scores"]),
        "advantage_mean": float(mean),
        "advantage_var": float(var),
        "entropy_like": float(dist.global_masked_mean(data["values"], data["mask"])),
    }


DTYPES = {"float64": 1e-12, "float32": 1e-5}  # dtype -> tolerance (absolute) against one process


def _statistics_rank(rank: int, out: str) -> None:
    for dtype_name in DTYPES:
        dtype = getattr(torch, dtype_name)
        full = _rollouts(dtype)
        rows = dist.shard(list(range(7)))  # rank 0: rows 0-3, rank 1: rows 4-6
        mine = {key: value[rows] for key, value in full.items()}
        result = _statistics(mine, beta=0.2)
        # A rank holding no rows (an evaluation with one prompt on two ranks) adds nothing to the global mean.
        lonely = torch.tensor([2.5], dtype=dtype)[dist.shard([0])]
        result["lonely_mean"] = dist.global_mean(lonely)
        torch.save({"rows": rows, **result}, Path(out) / f"rank-{rank}-{dtype_name}.pt")


@pytest.fixture(scope="module")
def two_rank_statistics(tmp_path_factory) -> Path:
    """One spawn for both dtypes: starting two processes costs more than the arithmetic."""
    out = tmp_path_factory.mktemp("statistics")
    spawn(out, _statistics_rank, str(out))
    return out


@pytest.mark.parametrize(("dtype_name", "tolerance"), DTYPES.items())
def test_whitened_advantages_and_kl_coefficient_over_two_ranks_equal_one_process_on_all_rollouts(
    two_rank_statistics, dtype_name, tolerance
):
    dtype = getattr(torch, dtype_name)
    ranks = [torch.load(two_rank_statistics / f"rank-{r}-{dtype_name}.pt", weights_only=False) for r in range(WORLD)]
    assert ranks[0]["rows"] + ranks[1]["rows"] == list(range(7)) and len(ranks[1]["rows"]) == 3

    single = _statistics(_rollouts(dtype), beta=0.2)  # not distributed here: the single-process code
    for key in ("rewards", "advantages", "returns"):
        joined = torch.cat([rank[key] for rank in ranks])
        assert torch.allclose(joined, single[key], atol=tolerance, rtol=0), key
    for key in ("kl_mean", "beta", "score_mean", "score_std", "advantage_mean", "advantage_var", "entropy_like"):
        for rank in ranks:
            assert rank[key] == pytest.approx(single[key], abs=tolerance, rel=0), key
    assert ranks[0]["lonely_mean"] == ranks[1]["lonely_mean"] == 2.5
    # The controller moved (the error is inside the clip), and the whitened advantages are whitened.
    assert single["beta"] != 0.2
    data = _rollouts(torch.float64)
    whitened = single["advantages"][data["mask"].bool()]
    if dtype == torch.float64:
        assert float(whitened.mean()) == pytest.approx(0.0, abs=1e-12)
        assert float(whitened.std()) == pytest.approx(1.0, abs=1e-6)


def test_global_statistics_fall_back_to_the_local_code_in_one_process():
    data = _rollouts(torch.float32)
    assert not dist.is_distributed() and dist.world_size() == 1 and dist.rank() == 0
    assert dist.shard([1, 2, 3]) == [1, 2, 3]
    assert torch.equal(
        dist.global_masked_whiten(data["values"], data["mask"]), core.masked_whiten(data["values"], data["mask"])
    )
    assert dist.global_mean(data["scores"]) == float(data["scores"].mean())
    assert dist.global_std(data["scores"]) == float(data["scores"].std())
    assert dist.global_std(data["scores"][:1]) is None
    assert dist.global_count(5) == 5
    assert dist.global_metric_sums({"a": 1.5}) == {"a": 1.5}


def test_shards_are_contiguous_nearly_equal_and_cover_the_batch():
    items = list(range(10))
    for world in (1, 2, 3, 4, 12):
        shares = [dist.shard(items, rank_=r, world=world) for r in range(world)]
        assert [item for share in shares for item in share] == items
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


# --- Writes on rank 0 only -----------------------------------------------------------------------------------------


def _write_slowly(folder: Path, rank: int) -> str:
    time.sleep(0.5)  # rank 1 would run ahead of an unfinished write without the barrier
    (folder / "checkpoint.txt").write_text(f"written by rank {rank}")
    return "written"


def _main_only_rank(rank: int, out: str) -> None:
    folder = Path(out)
    result = dist.on_main_process(_write_slowly, folder, rank)
    seen = (folder / "checkpoint.txt").read_text()  # every rank, right after the call
    (folder / f"rank-{rank}.json").write_text(json.dumps({"result": result, "seen": seen}))


def test_only_rank_0_writes_and_the_other_ranks_wait_for_it(tmp_path):
    spawn(tmp_path, _main_only_rank, str(tmp_path))
    reports = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(WORLD)]
    assert reports[0] == {"result": "written", "seen": "written by rank 0"}
    assert reports[1] == {"result": None, "seen": "written by rank 0"}


# --- The update step under DDP -------------------------------------------------------------------------------------

UPDATE_CONFIG = {
    "response_length": 8,
    "max_length": 64,
    "rollout_batch_size": 8,
    "mini_batch_size": 8,  # one minibatch: the step is the full rollout's, whatever the shuffle
    "batch_size": 2,  # several micro-batches per rank: gradients accumulate under no_sync, then one all-reduce
    "ppo_epochs": 2,
    "learning_rate": 1e-3,
    "whiten_rewards": True,
    "seed": 0,
}


def _runner(policy_dir: Path, reward_dir: Path):
    from trainer.configs import validate_config
    from trainer.ppo.train import _Runner

    config = validate_config("ppo", {"base_model": str(policy_dir), **UPDATE_CONFIG})
    return _Runner(config=config, reward_model_dir=reward_dir)


def _update(runner, batch) -> tuple[dict, dict]:
    optimizer = torch.optim.AdamW(
        [p for p in runner.policy.parameters() if p.requires_grad], lr=1e-3, eps=1e-5, weight_decay=0.0
    )
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    stats = runner.update(batch, beta=0.1, optimizer=optimizer, scaler=scaler)
    return stats, {name: p.detach().clone() for name, p in runner.policy.named_parameters()}


def _update_rank(rank: int, out: str, policy_dir: str, reward_dir: str) -> None:
    from trainer.ppo.train import Rollout

    torch.manual_seed(100 + rank)  # the ranks shuffle differently: the full-batch step must not care
    runner = _runner(Path(policy_dir), Path(reward_dir))
    full = torch.load(Path(out) / "rollout.pt")
    rows = dist.shard(list(range(full["responses"].shape[0])))
    batch = Rollout(**{key: value[rows] for key, value in full.items()})
    stats, weights = _update(runner, batch)
    torch.save({"stats": stats, "weights": weights}, Path(out) / f"update-{rank}.pt")


def test_a_ddp_update_on_two_halves_equals_one_process_updating_on_the_whole_rollout(
    tmp_path, sft_policy_dir, poem_reward_dir, snapshot_queries
):
    from dataclasses import asdict

    torch.manual_seed(0)
    runner = _runner(sft_policy_dir, poem_reward_dir)
    batch = runner.rollout(snapshot_queries(runner.tokenizer)[:8])
    torch.save(asdict(batch), tmp_path / "rollout.pt")
    single_stats, single_weights = _update(runner, batch)

    spawn(tmp_path, _update_rank, str(tmp_path), str(sft_policy_dir), str(poem_reward_dir))
    ranks = [torch.load(tmp_path / f"update-{r}.pt") for r in range(WORLD)]
    moved = 0
    for name, expected in single_weights.items():
        # DDP keeps the replicas identical, and two steps on halves are one process's two steps on the whole.
        assert torch.equal(ranks[0]["weights"][name], ranks[1]["weights"][name]), name
        assert torch.allclose(ranks[0]["weights"][name], expected, atol=1e-6, rtol=0), name
    for name, before in runner.reference._copy.named_parameters():
        moved += int(not torch.equal(before, single_weights[f"lm.{name}"]))
    assert moved > 0  # the step did change the policy: the comparison is not between two untouched models
    for key, value in single_stats.items():
        assert ranks[0]["stats"][key] == ranks[1]["stats"][key] == pytest.approx(value, abs=1e-5), key


# --- A short two-process run ---------------------------------------------------------------------------------------


class _Log:
    """Progress and on_checkpoint for one rank, appended to a JSON-lines file the test reads afterwards."""

    def __init__(self, path: Path):
        self.path = path

    def progress(self, *, step, total, metrics):
        self._write({"call": "progress", "step": step, "metrics": metrics})

    def checkpoint(self, *, step, folder, metrics):
        self._write({"call": "checkpoint", "step": step, "folder": str(folder)})

    def _write(self, record):
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def _train_rank(rank: int, out: str, policy_dir: str, reward_dir: str, files: dict) -> None:
    from tests.trainer.ppo.test_train import _config
    from trainer.ppo import train_ppo

    out = Path(out)
    log = _Log(out / f"log-{rank}.jsonl")
    config = _config(
        policy_dir, max_steps=2, rollout_batch_size=8, mini_batch_size=4, batch_size=2, ppo_epochs=2, checkpoint_every=1
    )
    common = {
        "train_file": Path(files["train"]),
        "validation_file": Path(files["validation"]),
        "reward_model_dir": Path(reward_dir),
        # Each rank is given its own folder so the test can see who wrote what (a real run shares one).
        "output_dir": out / f"run-{rank}",
        "progress": log.progress,
        "on_checkpoint": log.checkpoint,
    }
    # Batches that do not divide among the ranks are refused before anything loads.
    for field, overrides in (
        ("rollout_batch_size", {"rollout_batch_size": 7, "mini_batch_size": 7}),
        ("mini_batch_size", {"rollout_batch_size": 6, "mini_batch_size": 3}),
    ):
        try:
            train_ppo(config={**config, **overrides}, **common)
        except ValueError as error:
            assert f"{field} ({overrides[field]}) must be a multiple of the number of processes (2)" in str(error)
        else:
            raise AssertionError(f"{overrides} was not refused on two ranks")
    result = train_ppo(config=config, **common)
    (out / f"result-{rank}.json").write_text(json.dumps(result))
    # Resumed from rank 0's step-1 checkpoint on as many ranks: step 2 again, with the same samples.
    resumed = _Log(out / f"log-resumed-{rank}.jsonl")
    common.update(output_dir=out / f"resumed-{rank}", progress=resumed.progress, on_checkpoint=resumed.checkpoint)
    train_ppo(config=config, resume_from=out / "run-0" / "checkpoints" / "step-1", **common)


def test_a_two_process_ppo_run_finishes_and_only_rank_0_saves_a_checkpoint_that_loads(
    tmp_path, sft_policy_dir, poem_reward_dir, snapshot_paths
):
    from transformers import AutoModelForCausalLM

    spawn(tmp_path, _train_rank, str(tmp_path), str(sft_policy_dir), str(poem_reward_dir), snapshot_paths)

    results = [json.loads((tmp_path / f"result-{r}.json").read_text()) for r in range(WORLD)]
    assert results[0] == results[1]  # every figure is a global one
    assert results[0]["steps"] == 2 and results[0]["beta_final"] != 0.5
    logs = [
        (tmp_path / f"log-{r}.jsonl").read_text().splitlines() if (tmp_path / f"log-{r}.jsonl").exists() else []
        for r in range(WORLD)
    ]
    calls = [json.loads(line) for line in logs[0]]
    assert [c["step"] for c in calls if c["call"] == "progress"] == [1, 2, 2]  # two steps, then the evaluation
    assert [c["step"] for c in calls if c["call"] == "checkpoint"] == [1]
    assert calls[-1]["metrics"]["eval_reward_mean"] == pytest.approx(results[0]["reward_mean_final"])
    assert logs[1] == []  # rank 1 reports nothing
    assert not (tmp_path / "run-1").exists()  # and writes nothing

    run = tmp_path / "run-0"
    model = AutoModelForCausalLM.from_pretrained(run / "checkpoint")
    assert model.config.vocab_size > 0 and (run / "checkpoint" / "value_head.pt").exists()
    AutoModelForCausalLM.from_pretrained(run / "checkpoints" / "step-1")
    state = torch.load(run / "checkpoints" / "step-1" / "resume" / "ppo_state.pt", weights_only=False)
    # Both ranks' generators are kept, and they differ: each rank drew its own samples (seed + rank).
    assert len(state["rng_by_rank"]) == WORLD
    assert not torch.equal(state["rng_by_rank"][0]["torch"], state["rng_by_rank"][1]["torch"])
    assert torch.equal(state["rng_by_rank"][0]["torch"], state["rng"]["torch"])

    # The resumed run's step 2 is the uninterrupted run's: each rank got its own generator back.
    resumed = [json.loads(line) for line in (tmp_path / "log-resumed-0.jsonl").read_text().splitlines()]
    assert [c["step"] for c in resumed if c["call"] == "progress"] == [2, 2]
    original_step_2 = next(
        c for c in calls if c["call"] == "progress" and "reward_mean" in c["metrics"] and c["step"] == 2
    )
    for key in ("reward_mean", "kl", "entropy", "response_length", "policy_loss"):
        assert resumed[0]["metrics"][key] == pytest.approx(original_step_2["metrics"][key], abs=1e-5), key
    assert not (tmp_path / "log-resumed-1.jsonl").exists() and not (tmp_path / "resumed-1").exists()


# --- Fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snapshot_paths(tmp_path_factory) -> dict[str, str]:
    from tests.trainer.ppo.test_train import SUBJECTS, VERBS

    prompts = [f"{s} {v}".capitalize() for s in SUBJECTS for v in VERBS]
    folder = tmp_path_factory.mktemp("snapshot")
    files = {}
    for split, chunk in (("train", prompts[:48]), ("validation", prompts[48:])):
        files[split] = str(folder / f"{split}.jsonl")
        Path(files[split]).write_text(
            "".join(json.dumps({"prompt": p, "chosen": " a poem.", "rejected": " it."}) + "\n" for p in chunk)
        )
    return files


@pytest.fixture
def snapshot_queries(snapshot_paths):
    from trainer.ppo.data import encode_prompts, load_prompts

    def encode(tokenizer):
        return encode_prompts(tokenizer, load_prompts(Path(snapshot_paths["train"])), max_query_length=56)[0]

    return encode
