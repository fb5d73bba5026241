"""The held-out check: which prompts of an evaluation set the model under evaluation may have trained on.

A model's lineage is the run that made it and every run it was built from: the checkpoint it resumed from, its
reward model, and a `run:ID` or `checkpoint:ID` base model, each followed to its own lineage. Each of those runs'
training snapshot (train and validation files: a run saw both, one to learn and one to choose) gives prompts,
normalised as the snapshot split groups them (rewards.services.datasets.prompt_group); a set's prompt whose group
is among them overlaps.

Snapshots are immutable, so the groups of one are read once per process and kept (a few recent ones), keyed by the
files' sizes and times as well, so that a file changed behind our back is read again rather than trusted.
"""

import hashlib
import json
import re
from collections import OrderedDict
from pathlib import Path

from evaluation.models import EvalSet
from evaluation.selectors import eval_set_prompts
from rewards.errors import DatasetTampered
from rewards.models import DatasetSnapshot
from rewards.selectors import dataset_files
from rewards.services.datasets import prompt_group
from trainer.models import TrainingRun
from trainer.selectors import checkpoint_run_ids, runs_by_id

SNAPSHOT_FILES = ("train", "validation")
_CACHE_SIZE = 8
_cache: OrderedDict[tuple, frozenset[bytes]] = OrderedDict()
_RUN = re.compile(r"run:(\d{1,18})")
_CHECKPOINT = re.compile(r"checkpoint:(\d{1,18})")
# Config fields that name a model a run starts from or learns against (trainer.configs' model fields).
_MODEL_FIELDS = ("base_model", "model", "reference_model")


def eval_set_overlap(*, eval_set: EvalSet, run: TrainingRun | None) -> list[str]:
    """The ids of the set's prompts (in set order) that appear in the training snapshots of `run`'s lineage; none
    for no run (a base model folder: Tandem knows nothing of what it was trained on)."""
    if run is None:
        return []
    seen: set[bytes] = set()
    for snapshot in lineage_snapshots(run=run):
        seen |= snapshot_groups(snapshot=snapshot)
    if not seen:
        return []
    return [
        external_id
        for external_id, group in eval_set_prompts(eval_set=eval_set).values_list("external_id", "group")
        if bytes.fromhex(group) in seen
    ]


def lineage_runs(*, run: TrainingRun) -> list[TrainingRun]:
    """`run` and every run it was built from, each once, nearest first."""
    found: dict[int, TrainingRun] = {run.pk: run}
    frontier = [run]
    while frontier:
        wanted: set[int] = set()
        checkpoint_ids: set[int] = set()
        for current in frontier:
            if current.reward_model_id:
                wanted.add(current.reward_model_id)
            if current.resume_from_id:
                checkpoint_ids.add(current.resume_from_id)
            if current.sampled_checkpoint_id:
                checkpoint_ids.add(current.sampled_checkpoint_id)
            for name in _MODEL_FIELDS:
                value = (current.config or {}).get(name)
                if not isinstance(value, str):
                    continue
                if match := _RUN.fullmatch(value):
                    wanted.add(int(match.group(1)))
                elif match := _CHECKPOINT.fullmatch(value):
                    checkpoint_ids.add(int(match.group(1)))
            reward_run = (current.config or {}).get("reward_model_run")
            if isinstance(reward_run, int) and not isinstance(reward_run, bool):
                wanted.add(reward_run)
        if checkpoint_ids:
            wanted |= checkpoint_run_ids(checkpoint_ids=checkpoint_ids)
        new = runs_by_id(run_ids=wanted - set(found))
        found.update(new)
        frontier = list(new.values())
    return list(found.values())


def lineage_snapshots(*, run: TrainingRun) -> list[DatasetSnapshot]:
    snapshot_ids = {r.snapshot_id for r in lineage_runs(run=run) if r.snapshot_id}
    return list(DatasetSnapshot.objects.filter(pk__in=snapshot_ids).order_by("pk"))


def snapshot_groups(*, snapshot: DatasetSnapshot) -> frozenset[bytes]:
    """The sha256 digests of the normalised prompts of the snapshot's train and validation files.

    Each file is checked against its stored sha256 as it is read (DatasetTampered otherwise): a held-out claim
    made from a changed file would be worthless.
    """
    files = dataset_files(snapshot=snapshot)
    key_parts: list = [snapshot.pk]
    for name in SNAPSHOT_FILES:
        path = files[name]
        if not path.is_file():
            raise DatasetTampered(f"Dataset snapshot {snapshot.pk}: {path.name} is missing ({path}).", file=name)
        stat = path.stat()
        key_parts += [stat.st_size, stat.st_mtime_ns]
    key = tuple(key_parts)
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    groups: set[bytes] = set()
    for name in SNAPSHOT_FILES:
        _read_groups(files[name], expected=snapshot.sha256.get(name), snapshot=snapshot, name=name, into=groups)
    result = frozenset(groups)
    _cache[key] = result
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return result


def _read_groups(path: Path, *, expected: str | None, snapshot: DatasetSnapshot, name: str, into: set[bytes]) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for line in handle:
            digest.update(line)
            if not line.strip():
                continue
            prompt = _line_prompt(json.loads(line))
            if prompt is not None:
                into.add(hashlib.sha256(prompt_group(prompt)).digest())
    actual = digest.hexdigest()
    if actual != expected:
        raise DatasetTampered(
            f"Dataset snapshot {snapshot.pk}: {path.name} was changed after it was written (sha256 {actual}, "
            f"stored {expected}): its prompts cannot be trusted for the held-out check.",
            file=name,
        )


def _line_prompt(line: dict) -> str | list | None:
    """The prompt of one snapshot line: a preference pair's "prompt", or an SFT conversation's messages before its
    last assistant turn."""
    if "prompt" in line:
        return line["prompt"]
    messages = line.get("messages")
    if isinstance(messages, list) and messages:
        end = len(messages)
        while end and isinstance(messages[end - 1], dict) and messages[end - 1].get("role") == "assistant":
            end -= 1
        return messages[:end] or None
    return None
