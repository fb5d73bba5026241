"""Loading a dataset snapshot's train/validation JSONL (TRL preference format, standard or conversational)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset

PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")


class DatasetFormatError(ValueError):
    """The file is not a preference dataset this code can train on."""


def load_split(path: Path, *, cache_dir: Path | None = None) -> Dataset:
    """One split as a `datasets.Dataset` (empty when the file has no lines), with its columns checked."""
    from datasets import Dataset, load_dataset

    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path} does not exist.")
    if path.stat().st_size == 0 or not path.read_text(encoding="utf-8").strip():
        return Dataset.from_dict({column: [] for column in PREFERENCE_COLUMNS})
    dataset = load_dataset(
        "json", data_files={"split": str(path)}, split="split", cache_dir=str(cache_dir) if cache_dir else None
    )
    missing = [column for column in PREFERENCE_COLUMNS if column not in dataset.column_names]
    if missing:
        raise DatasetFormatError(f"{path.name} has no {', '.join(missing)} column (TRL preference format expected).")
    return dataset


def is_conversational(dataset: Dataset) -> bool:
    return len(dataset) > 0 and isinstance(dataset[0]["prompt"], list)


def answer_text(answer) -> str:
    """The text of an answer: itself in the standard format, its messages' contents in the conversational one."""
    if isinstance(answer, str):
        return answer
    return "".join(message["content"] for message in answer)


def prompt_text(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(message["content"] for message in prompt)


def unique_prompts(dataset: Dataset) -> Dataset:
    """The prompts of a preference split, each once, in first-seen order (the input of online methods)."""
    from datasets import Dataset

    seen: set[str] = set()
    prompts = []
    for prompt in dataset["prompt"]:
        key = repr(prompt)
        if key not in seen:
            seen.add(key)
            prompts.append(prompt)
    return Dataset.from_dict({"prompt": prompts})
