"""Synthetic preference snapshots with a signal a tiny model can learn in seconds.

The chosen answer ends with a marker word ("helpful", "clear" or "kind") and the rejected one never does; lengths are
drawn independently, so about half the pairs have the shorter answer chosen and length alone cannot explain the
preference. Rows carry the snapshot's extra keys (item_id, batch, votes, agreement, margin).
"""

import json
import random
from pathlib import Path

MARKERS = ("helpful", "clear", "kind")
WORDS = [
    "the",
    "model",
    "explains",
    "a",
    "question",
    "short",
    "reply",
    "long",
    "story",
    "facts",
    "code",
    "poem",
    "data",
    "clearly",
    "briefly",
]


def pair_rows(n: int, *, seed: int, conversational: bool = False, margin: float = 0.33) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt = "Question: " + " ".join(rng.choices(WORDS, k=4)) + "?"
        chosen = " " + " ".join(rng.choices(WORDS, k=rng.randint(2, 9))) + f" {rng.choice(MARKERS)}."
        rejected = " " + " ".join(rng.choices(WORDS, k=rng.randint(2, 9))) + "."
        row = {
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "item_id": f"item-{seed}-{i}",
            "batch": "b1",
            "criteria_version": 1,
            "votes": {"a": 2, "b": 1, "tie": 0},
            "agreement": 0.67,
            "margin": margin,
        }
        if conversational:
            row["prompt"] = [{"role": "user", "content": prompt}]
            row["chosen"] = [{"role": "assistant", "content": chosen.strip()}]
            row["rejected"] = [{"role": "assistant", "content": rejected.strip()}]
        rows.append(row)
    return rows


def write_snapshot(directory: Path, *, n_train: int, n_validation: int, **kwargs) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for name, n, seed in (("train", n_train, 1), ("validation", n_validation, 2)):
        path = directory / f"{name}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in pair_rows(n, seed=seed, **kwargs)))
        files.append(path)
    return files[0], files[1]


class RecordingProgress:
    """A Progress that records each call, and optionally raises RunCancelled at a given step."""

    def __init__(self, cancel_at: int | None = None):
        self.calls: list[dict] = []
        self.cancel_at = cancel_at

    def __call__(self, *, step: int, total: int, metrics: dict[str, float]) -> None:
        from trainer.progress import RunCancelled

        self.calls.append({"step": step, "total": total, "metrics": metrics})
        if self.cancel_at is not None and step >= self.cancel_at:
            raise RunCancelled("cancel requested in the test")

    @property
    def step_calls(self) -> list[dict]:
        return [c for c in self.calls if not any(k.startswith("eval_") for k in c["metrics"])]
