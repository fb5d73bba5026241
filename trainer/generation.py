"""The worker side of a generate run: sample the run's prompt file with its model and store one Generation per
response, with the run's summary (mean length, reward, KL, identity leaks) as its evaluation.

Before anything is loaded the prompt file's sha256 is checked against the one the run was started with, the sampled
checkpoint's files against its manifest, and the reward-model run named in the config against the project; each
refusal fails the run "Refused: ..." (trainer.services.execute) with nothing stored. The sampling itself is
trainer.ml.generate (torch, no Django).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from django.conf import settings
from django.db import transaction

from rewards.errors import DatasetTampered
from trainer.configs import ConfigError
from trainer.models import Checkpoint, Generation, Kind, Status, TrainingRun
from trainer.progress import Progress

logger = logging.getLogger("trainer.run")

GENERATIONS_FILE = "generations.jsonl"  # every response, beside the run's lineage.json: the hand-off copy
_CHECKPOINT = re.compile(r"checkpoint:(\d{1,18})")
_RUN = re.compile(r"run:(\d{1,18})")


def reward_model_run_error(*, run_id: int | None, project_id: int | None) -> str | None:
    """Why reward-model run `run_id` cannot score a generate run of `project_id`, or None when it can (or none is
    named). Another project's run reads like a missing one."""
    from trainer.services.runs import checkpoint_dir

    if run_id is None:
        return None
    run = TrainingRun.objects.filter(pk=run_id, project_id=project_id).first()
    if run is None:
        return f"No run {run_id} in this project."
    if run.kind != Kind.REWARD_MODEL:
        return f"Run {run.pk} is a {run.get_kind_display()} run, not a reward model."
    if run.status != Status.SUCCEEDED:
        return f"Reward-model run {run.pk} is {run.get_status_display().lower()}; it must have succeeded."
    if not checkpoint_dir(run=run).is_dir():
        return f"Reward-model run {run.pk} has no checkpoint on disk any more."
    return None


def sampled_checkpoint_of(*, run: TrainingRun) -> Checkpoint | None:
    """The Checkpoint a generate run samples: the one it was started with, else the one its config's model names
    (checkpoint:ID, or run:ID's final checkpoint row when the run recorded one); None for a base-model folder."""
    if run.sampled_checkpoint_id is not None:
        return run.sampled_checkpoint
    model = str((run.config or {}).get("model") or "")
    if match := _CHECKPOINT.fullmatch(model):
        return Checkpoint.objects.filter(pk=int(match.group(1)), run__project_id=run.project_id).first()
    if match := _RUN.fullmatch(model):
        return (
            Checkpoint.objects.filter(run_id=int(match.group(1)), run__project_id=run.project_id, final=True)
            .order_by("-step")
            .first()
        )
    return None


def prompt_file_verify(*, run: TrainingRun) -> Path:
    """The run's prompt file (run.inputs["prompts"]), once its sha256 is the one the run was started with; else
    DatasetTampered. A path that leaves ARTIFACTS_DIR is refused like a changed file."""
    from core.files import file_sha256

    spec = (run.inputs or {}).get("prompts") or {}
    relative, expected = spec.get("path"), spec.get("sha256")
    if not relative or not expected:
        raise DatasetTampered(f"Generate run {run.pk} names no prompt file (inputs.prompts.path and sha256).")
    artifacts = Path(os.path.realpath(settings.ARTIFACTS_DIR))
    path = Path(os.path.realpath(Path(settings.ARTIFACTS_DIR) / relative))
    if not path.is_relative_to(artifacts):
        raise DatasetTampered(f"Prompt file {relative}: not under the artifacts folder.")
    if not path.is_file():
        raise DatasetTampered(f"Prompt file {relative} is missing.")
    actual = file_sha256(path)
    if actual != expected:
        raise DatasetTampered(
            f"Prompt file {relative} was changed after the run was started (sha256 {actual}, stored {expected}). "
            "Import the evaluation set again instead of editing its file."
        )
    return path


def _checkpoint_verify(*, run: TrainingRun) -> None:
    from trainer.checkpoints import checkpoint_verify
    from trainer.errors import CheckpointGone, CheckpointTampered

    checkpoint = sampled_checkpoint_of(run=run)
    if checkpoint is None:
        return
    try:
        checkpoint_verify(checkpoint=checkpoint)
    except (CheckpointTampered, CheckpointGone) as exc:
        raise ConfigError({"model": exc.detail}) from exc


def generate_execute(*, run: TrainingRun, config: dict, output_dir: Path, progress: Progress) -> dict:
    """Sample, store the Generation rows and generations.jsonl, return the summary (the run's evaluation).

    `config` is the run's config as loaded (trainer.services.execute._load_config): model fields resolved to folders.
    """
    from trainer.ml.generate import generate, leak_matcher
    from trainer.services.runs import checkpoint_dir

    prompt_file = prompt_file_verify(run=run)
    reward_error = reward_model_run_error(run_id=config.get("reward_model_run"), project_id=run.project_id)
    if reward_error:
        raise ConfigError({"reward_model_run": reward_error})
    _checkpoint_verify(run=run)
    reward_model_dir = None
    if config.get("reward_model_run") is not None:
        reward_model_dir = checkpoint_dir(run=TrainingRun.objects.get(pk=config["reward_model_run"]))

    result = generate(config=config, prompt_file=prompt_file, reward_model_dir=reward_model_dir, progress=progress)
    leaks = leak_matcher(run.project.identity_leak_patterns or [])
    responses = result["responses"]
    for response in responses:
        response["identity_leak"] = leaks(response["text"])
    rows = [
        Generation(
            run=run,
            prompt_id=response["id"],
            sample=response["sample"],
            text=response["text"],
            token_count=response["token_count"],
            finish_reason=response["finish_reason"],
            reward=response["reward"],
            kl=response["kl"],
            identity_leak=response["identity_leak"],
        )
        for response in responses
    ]
    with transaction.atomic():
        Generation.objects.filter(run=run).delete()  # a redelivered task never doubles the rows
        Generation.objects.bulk_create(rows, batch_size=500)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / GENERATIONS_FILE).open("w", encoding="utf-8") as handle:
        for response in responses:
            handle.write(json.dumps(response, ensure_ascii=False) + "\n")

    summary = {**result["summary"], "identity_leaks": sum(r["identity_leak"] for r in responses)}
    metrics = {f"eval_{k}": float(v) for k, v in summary.items() if isinstance(v, int | float)}
    progress(step=result["batches"], total=result["batches"], metrics=metrics)
    logger.info("run %s: %d responses to %d prompts stored", run.pk, summary["responses"], summary["prompts"])
    return summary
