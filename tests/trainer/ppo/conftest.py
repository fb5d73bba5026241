"""PPO test models: a briefly fine-tuned tiny policy, and a reward model that likes the token " poem"."""

import contextlib
from pathlib import Path

import pytest

from tests.trainer.ppo.token_reward import build_token_reward_model


@contextlib.contextmanager
def _one_torch_thread():
    """Tiny models run faster on one thread (two threads spin against each other when other processes share the
    cores: 15x slower measured), and results do not depend on how reductions were split."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def one_torch_thread():
    with _one_torch_thread():
        yield


@pytest.fixture(scope="session")
def poem_token_id(sft_policy_dir) -> int:
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(sft_policy_dir)(" poem", add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, ids
    return ids[0]


@pytest.fixture(scope="session")
def poem_reward_dir(sft_policy_dir, poem_token_id, tmp_path_factory) -> Path:
    """A run-style reward model folder: the checkpoint PPO loads is `<dir>/checkpoint`."""
    run_dir = tmp_path_factory.mktemp("ppo-poem-reward")
    build_token_reward_model(sft_policy_dir, run_dir / "checkpoint", token_id=poem_token_id)
    return run_dir
