"""Checkpoints along a policy run, the training side: which steps save, where, and the files' manifest.

Django-free and torch-free: the training functions (DPO, RLOO, PPO) import it, and so does trainer.checkpoints,
which records what they saved. A checkpoint folder is a plain `save_pretrained` folder (LoRA merged) that the Auto*
classes load; a resumable one also holds the optimizer, scheduler and RNG state, in RESUME_DIRNAME when the weights
there differ from the merged ones (LoRA: the adapter), else beside the weights, and RESUME_MARKER says which.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from core.files import file_sha256

CHECKPOINTS_DIRNAME = "checkpoints"  # <run output>/checkpoints/step-<N>/
RESUME_DIRNAME = "resume"
RESUME_MARKER = "tandem_resume.json"  # {"format": "hf-trainer" | "ppo", "state_dir": "." | "resume", "step": N}
# Checkpoints spread over a run when checkpoint_every is not set, besides the final one.
DEFAULT_INTERMEDIATE = 4


class OnCheckpoint(Protocol):
    """Called by a training function once a checkpoint folder is complete (the run layer records it)."""

    def __call__(self, *, step: int, folder: Path, metrics: dict[str, float]) -> None: ...


def no_checkpoints(*, step: int, folder: Path, metrics: dict[str, float]) -> None:
    """An OnCheckpoint that records nothing (tests and scripts that call a training function directly)."""


def checkpoint_steps(total: int, every: int | None) -> list[int]:
    """The optimizer steps after which a run of `total` steps saves a checkpoint, the final step (`total`) last.

    `every`: every that many steps; None: DEFAULT_INTERMEDIATE evenly spaced ones (total x k/5, rounded) before the
    final one. Steps are distinct and in 1..total, so a short run saves fewer.
    """
    total = int(total)
    if total < 1:
        return []
    if every is not None:
        if every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        steps = set(range(every, total, every))
    else:
        parts = DEFAULT_INTERMEDIATE + 1
        steps = {round(total * k / parts) for k in range(1, parts)}
    return [*sorted(s for s in steps if 1 <= s < total), total]


def intermediate_steps(total: int, every: int | None, *, after: int = 0) -> set[int]:
    """The steps of checkpoint_steps that save an intermediate checkpoint (not the final one), past `after`."""
    return {s for s in checkpoint_steps(total, every)[:-1] if s > after}


def step_folder(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIRNAME / f"step-{int(step)}"


def file_manifest(folder: Path) -> dict[str, str]:
    """Every regular file under `folder` (relative POSIX path -> sha256), sorted by path. Links are refused: a
    checkpoint is a plain folder, and a link could point anywhere."""
    folder = Path(folder)
    manifest = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"{path} is a symbolic link; a checkpoint holds plain files only")
        if path.is_file():
            manifest[path.relative_to(folder).as_posix()] = file_sha256(path)
    return manifest


def write_resume_marker(folder: Path, *, fmt: str, state_dir: str, step: int) -> None:
    (Path(folder) / RESUME_MARKER).write_text(
        json.dumps({"format": fmt, "state_dir": state_dir, "step": int(step)}, sort_keys=True) + "\n"
    )


def read_resume_marker(folder: Path) -> dict | None:
    path = Path(folder) / RESUME_MARKER
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def resume_state_dir(folder: Path) -> Path:
    """Where a resumable checkpoint keeps its optimizer state (what Trainer.train(resume_from_checkpoint=) reads)."""
    marker = read_resume_marker(folder)
    if marker is None:
        raise FileNotFoundError(f"{folder} holds no optimizer state to resume from")
    return (Path(folder) / marker["state_dir"]).resolve()
