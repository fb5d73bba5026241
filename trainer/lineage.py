"""A run's lineage: everything a checkpoint came from, as a JSON-ready dict, written as lineage.json beside it.

The hand-off artifact: someone who finds the checkpoint folder can tell which data (snapshot, its sha256s,
batches, criteria versions), which reward model and which settings made it, and how it scored.
"""

import functools
import hashlib
import json
import os
import subprocess
from datetime import datetime
from importlib import metadata
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from trainer.models import TrainingRun

SCHEMA_VERSION = 1
LIBRARIES = ("torch", "transformers", "trl", "peft", "datasets", "tokenizers", "django", "celery")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@functools.cache
def code_version() -> dict:
    """The git commit the worker runs (TANDEM_GIT_SHA when the image has no .git), and library versions."""
    sha = os.environ.get("TANDEM_GIT_SHA", "")
    dirty = None
    if not sha:
        try:
            sha = subprocess.run(
                ["git", "rev-parse", "HEAD"],  # noqa: S607
                cwd=settings.BASE_DIR,
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
            dirty = bool(
                subprocess.run(
                    ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
                    cwd=settings.BASE_DIR,
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=True,
                ).stdout.strip()
            )
        except (OSError, subprocess.SubprocessError):
            sha = ""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"git_sha": sha or None, "git_dirty": dirty, "libraries": versions}


def _snapshot(run: TrainingRun) -> dict:
    snapshot = run.snapshot
    return {
        "id": snapshot.pk,
        "kind": snapshot.kind,
        "directory": snapshot.directory,
        "created_at": _iso(snapshot.created_at),
        "rule": snapshot.rule,
        "validation_fraction": snapshot.validation_fraction,
        "seed": snapshot.seed,
        "prompt_format": snapshot.prompt_format,
        "counts": snapshot.counts,
        "sha256": snapshot.sha256,
    }


def _reward_model(run: TrainingRun) -> dict | None:
    return _reward_model_row(run.reward_model) if run.reward_model is not None else None


def _reward_model_row(rm: TrainingRun) -> dict:
    return {
        "run": rm.pk,
        "checkpoint": str(Path(rm.output_dir) / "checkpoint"),
        "snapshot": rm.snapshot_id,
        "base_model": rm.config.get("base_model"),
        "finished_at": _iso(rm.finished_at),
        "evaluation": rm.evaluation,
    }


def _training_data(run: TrainingRun) -> dict:
    """The snapshot a training run trained on, its batches (labelled sources among them, kind "labelled"), their
    criteria versions, and the labelled sources with their imported files (name, format, file names and sha256s)."""
    batches = list(run.snapshot.batches.select_related("criteria_version").order_by("pk"))
    # A labelled source was judged elsewhere, under no criteria version of the project's.
    criteria = {b.criteria_version_id: b.criteria_version for b in batches if b.kind != "labelled"}
    return {
        "snapshot": _snapshot(run),
        "batches": [
            {
                "id": b.pk,
                "name": b.name,
                "kind": b.kind,
                "status": b.status,
                "criteria_version": b.criteria_version.number,
            }
            for b in batches
        ],
        "sources": run.snapshot.sources,
        "criteria_versions": [
            {"id": c.pk, "number": c.number, "created_at": _iso(c.created_at)}
            for c in sorted(criteria.values(), key=lambda c: c.number)
        ],
    }


def lineage_build(*, run: TrainingRun, device: str = "") -> dict:
    """A training run's lineage, or a generate run's (trainer.generation): what it sampled, from which prompt file,
    and the data that trained the sampled checkpoint."""
    generate = run.snapshot_id is None
    lineage = {
        "schema": SCHEMA_VERSION,
        "run": {
            "id": run.pk,
            "kind": run.kind,
            "status": run.status,
            "created_at": _iso(run.created_at),
            "created_by": run.created_by.get_username() if run.created_by_id else None,
            "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at),
            "based_on": run.based_on_id,
            "device": device or run.device,
            "compute": run.compute,  # processes, devices, strategy and precision the worker used (docs/SCALING.md)
            "worker": run.worker,
            "output_dir": run.output_dir,
            "checkpoint": None if generate else str(Path(run.output_dir) / "checkpoint"),
        },
        "project": {"id": run.project_id, "name": run.project.name},
        "config": run.config,
    }
    if generate:
        lineage.update({"snapshot": None, "batches": [], "criteria_versions": [], **_generation(run)})
    else:
        lineage.update({**_training_data(run), "reward_model": _reward_model(run)})
        lineage.update(_demonstrations_and_base(run))
    lineage.update({"evaluation": run.evaluation, "code": code_version(), "written_at": timezone.now().isoformat()})
    return lineage


def _generation(run: TrainingRun) -> dict:
    """A generate run's sources: the model, the checkpoint and the run that made it (with that run's data, so the
    hand-off traces a response back to the judgments that trained its model), the prompt file, the scorers."""
    from trainer.generation import GENERATIONS_FILE, sampled_checkpoint_of

    config = run.config or {}
    checkpoint = sampled_checkpoint_of(run=run)
    sampled_run = checkpoint.run if checkpoint is not None else _named_run(config.get("model"), run.project_id)
    reward_model = None
    if config.get("reward_model_run") is not None:
        rm = TrainingRun.objects.filter(pk=config["reward_model_run"], project_id=run.project_id).first()
        if rm is not None:
            reward_model = _reward_model_row(rm)
    return {
        "model": config.get("model"),
        "sampled_checkpoint": _checkpoint(checkpoint) if checkpoint is not None else None,
        "sampled_run": _sampled_run(sampled_run) if sampled_run is not None else None,
        "training_snapshots": _training_snapshots(sampled_run),
        "prompts": (run.inputs or {}).get("prompts"),
        "generations": str(Path(run.output_dir) / GENERATIONS_FILE) if run.output_dir else None,
        "reward_model": reward_model,
        "reference_model": config.get("reference_model"),
    }


def _named_run(model: str | None, project_id: int) -> TrainingRun | None:
    """The run a model field names (run:ID, or checkpoint:ID's run) in the project, if any."""
    from trainer.models import Checkpoint

    model = str(model or "")
    if model.startswith("run:") and model[4:].isdigit():
        return TrainingRun.objects.filter(pk=int(model[4:]), project_id=project_id).first()
    if model.startswith("checkpoint:") and model[11:].isdigit():
        checkpoint = Checkpoint.objects.filter(pk=int(model[11:]), run__project_id=project_id).first()
        return checkpoint.run if checkpoint is not None else None
    return None


def _checkpoint(checkpoint) -> dict:
    manifest = checkpoint.manifest or {}
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return {
        "id": checkpoint.pk,
        "run": checkpoint.run_id,
        "step": checkpoint.step,
        "final": checkpoint.final,
        "folder": checkpoint.folder,
        "manifest": manifest,
        "manifest_sha256": hashlib.sha256(canonical).hexdigest(),
        "metrics": checkpoint.metrics,
        "deleted_at": _iso(checkpoint.deleted_at),
    }


def _sampled_run(source: TrainingRun) -> dict:
    """The run that trained the sampled model: from its own lineage when it has one (as it was when it ran), else
    from its rows."""
    stored = source.lineage or {}
    keys = ("snapshot", "batches", "criteria_versions", "reward_model")
    if stored and all(key in stored for key in keys):
        data = {key: stored[key] for key in keys}
    elif source.snapshot_id is not None:
        data = {**_training_data(source), "reward_model": _reward_model(source)}
    else:
        data = dict.fromkeys(keys)
    return {
        "id": source.pk,
        "kind": source.kind,
        "status": source.status,
        "base_model": (source.config or {}).get("base_model"),
        "finished_at": _iso(source.finished_at),
        **data,
    }


def _training_snapshots(source: TrainingRun | None) -> list[int]:
    """Every dataset snapshot in the sampled model's ancestry: its run's, then the runs its base model and its
    resume_from checkpoint came from, and so on (each run once)."""
    snapshots: list[int] = []
    seen: set[int] = set()
    pending = [source] if source is not None else []
    while pending and len(seen) < 1000:
        current = pending.pop()
        if current is None or current.pk in seen:
            continue
        seen.add(current.pk)
        if current.snapshot_id is not None and current.snapshot_id not in snapshots:
            snapshots.append(current.snapshot_id)
        pending.append(_named_run((current.config or {}).get("base_model"), current.project_id))
        if current.resume_from_id is not None:
            pending.append(current.resume_from.run)
    return snapshots


def lineage_write(*, lineage: dict, directories: list[Path]) -> list[Path]:
    """lineage.json in each directory (the run's folder and its checkpoint, so a copied checkpoint keeps it)."""
    text = json.dumps(lineage, indent=2, sort_keys=False, default=str) + "\n"
    written = []
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "lineage.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    return written


# --- SFT: demonstrations, and runs that start from another run -------------------------------------------------


def _demonstrations_and_base(run: TrainingRun) -> dict:
    """What a training run adds beside its snapshot: the demonstrations behind an SFT snapshot (their batches,
    labelled sources, writers and reviewers, from its manifest), the run its base model came from (run:ID or
    checkpoint:ID, with that run's own data, so a DPO run on an SFT run traces back to the demonstrations), and the
    reference the policy is held to (DPO, PPO and RLOO: the base model)."""
    from trainer.models import Kind

    base_model = (run.config or {}).get("base_model")
    base = _named_run(base_model, run.project_id)
    held_to_base = run.kind in (Kind.DPO, Kind.PPO, Kind.RLOO)
    return {
        "demonstrations": _demonstrations(run.snapshot),
        "base_run": _base_run(base) if base is not None and base.pk != run.pk else None,
        "reference_model": base_model if held_to_base else None,
    }


def _demonstrations(snapshot) -> dict | None:
    """An SFT snapshot's sources of demonstrations as its manifest.json lists them; None for a preference snapshot."""
    from rewards.models import DatasetSnapshot
    from rewards.selectors import dataset_files

    if snapshot is None or snapshot.kind != DatasetSnapshot.Kind.SFT:
        return None
    try:
        manifest = json.loads(dataset_files(snapshot=snapshot)["manifest"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    return {
        "snapshot": snapshot.pk,
        "batches": [{"id": b.pk, "name": b.name, "kind": b.kind} for b in snapshot.batches.order_by("pk")],
        "sources": manifest.get("sources", snapshot.sources),
        "writers": manifest.get("writers", {}),
        "reviewers": manifest.get("reviewers", {}),
        "counts": manifest.get("counts", snapshot.counts),
    }


def _base_run(source: TrainingRun) -> dict:
    """The run a base model came from, with its data and, in turn, its own base run and demonstrations (from its
    lineage as it was when it ran, else from its rows)."""
    stored = source.lineage or {}
    return {
        **_sampled_run(source),
        "checkpoint": str(Path(source.output_dir) / "checkpoint") if source.output_dir else None,
        "evaluation": source.evaluation,
        "demonstrations": stored["demonstrations"] if "demonstrations" in stored else _demonstrations(source.snapshot),
        "base_run": stored.get("base_run"),
    }
