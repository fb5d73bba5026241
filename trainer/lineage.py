"""A run's lineage: everything a checkpoint came from, as a JSON-ready dict, written as lineage.json beside it.

The hand-off artifact: someone who finds the checkpoint folder can tell which data (snapshot, its sha256s,
batches, criteria versions), which reward model and which settings made it, and how it scored.
"""

import functools
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
    rm = run.reward_model
    if rm is None:
        return None
    return {
        "run": rm.pk,
        "checkpoint": str(Path(rm.output_dir) / "checkpoint"),
        "snapshot": rm.snapshot_id,
        "base_model": rm.config.get("base_model"),
        "finished_at": _iso(rm.finished_at),
        "evaluation": rm.evaluation,
    }


def lineage_build(*, run: TrainingRun, device: str = "") -> dict:
    batches = list(run.snapshot.batches.select_related("criteria_version").order_by("pk"))
    criteria = {b.criteria_version_id: b.criteria_version for b in batches}
    return {
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
            "worker": run.worker,
            "output_dir": run.output_dir,
            "checkpoint": str(Path(run.output_dir) / "checkpoint"),
        },
        "project": {"id": run.project_id, "name": run.project.name},
        "config": run.config,
        "snapshot": _snapshot(run),
        "batches": [
            {"id": b.pk, "name": b.name, "status": b.status, "criteria_version": b.criteria_version.number}
            for b in batches
        ],
        "criteria_versions": [
            {"id": c.pk, "number": c.number, "created_at": _iso(c.created_at)}
            for c in sorted(criteria.values(), key=lambda c: c.number)
        ],
        "reward_model": _reward_model(run),
        "evaluation": run.evaluation,
        "code": code_version(),
        "written_at": timezone.now().isoformat(),
    }


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
