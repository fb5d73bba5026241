"""Checkpoint rows: recording what a policy run saved, keeping only `keep_checkpoints` of them, checking their
files against the manifest, streaming one as a tar archive, and the rules a `resume_from` checkpoint must meet.

The training side (which steps save, the folder layout, the manifest) is trainer.ml.checkpointing: torch- and
Django-free, shared with the training functions. The worker records rows as the checkpoints are saved
(trainer.services.execute), so a run that is lost or cancelled keeps those it reached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from trainer.errors import CheckpointGone, CheckpointTampered
from trainer.ml.checkpointing import (  # noqa: F401 - re-exported: the schedule and manifest live with the trainers
    checkpoint_steps,
    file_manifest,
    read_resume_marker,
)
from trainer.models import Checkpoint, TrainingRun

logger = logging.getLogger("trainer.checkpoints")

ARCHIVE_MANIFEST = "manifest.json"
_BLOCK = tarfile.BLOCKSIZE  # 512
_CHUNK = 1 << 20


def checkpoint_path(*, checkpoint: Checkpoint) -> Path:
    return Path(settings.ARTIFACTS_DIR) / checkpoint.folder


def _relative(folder: Path) -> str:
    folder = Path(folder).resolve()
    root = Path(settings.ARTIFACTS_DIR).resolve()
    return str(folder.relative_to(root))


def checkpoint_record(
    *,
    run_id: int,
    step: int,
    folder: Path,
    metrics: dict[str, float] | None = None,
    final: bool = False,
    resumable: bool | None = None,
) -> Checkpoint:
    """Store the Checkpoint row of a folder the worker just finished writing: its manifest (every file's sha256),
    size, and the training metrics at that step. `resumable` defaults to whether the folder has a resume marker."""
    folder = Path(folder)
    manifest = file_manifest(folder)
    size = sum((folder / name).stat().st_size for name in manifest)
    if resumable is None:
        resumable = read_resume_marker(folder) is not None
    clean = {str(k)[:100]: float(v) for k, v in (metrics or {}).items() if _finite(v)}
    checkpoint = Checkpoint.objects.create(
        run_id=run_id,
        step=int(step),
        folder=_relative(folder),
        manifest=manifest,
        metrics=clean,
        final=final,
        resumable=resumable,
        size_bytes=size,
    )
    logger.info(
        "run %s: checkpoint %s at step %s (%d files, %d bytes)", run_id, checkpoint.pk, step, len(manifest), size
    )
    return checkpoint


def _finite(value: object) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number == number and number not in (float("inf"), float("-inf"))


def checkpoints_retain(*, run_id: int, keep: int | None) -> list[int]:
    """Remove the files of the run's intermediate checkpoints beyond the `keep` most recent (None: keep all) and set
    their deleted_at; the rows stay for lineage. Never the final one, nor one another run resumed from or sampled."""
    if keep is None:
        return []
    intermediate = (
        Checkpoint.objects.filter(run_id=run_id, final=False, deleted_at__isnull=True)
        .exclude(Q(resumed_by__isnull=False) | Q(generation_runs__isnull=False))
        .order_by("-step")
        .distinct()
    )
    removed = []
    for checkpoint in list(intermediate)[keep:]:
        with transaction.atomic():
            if not Checkpoint.objects.filter(pk=checkpoint.pk, deleted_at__isnull=True).update(
                deleted_at=timezone.now()
            ):
                continue
        shutil.rmtree(checkpoint_path(checkpoint=checkpoint), ignore_errors=True)
        removed.append(checkpoint.pk)
        logger.info(
            "run %s: checkpoint %s (step %s) removed by keep_checkpoints", run_id, checkpoint.pk, checkpoint.step
        )
    return removed


def checkpoint_verify(*, checkpoint: Checkpoint) -> None:
    """Raise CheckpointTampered when a file of the manifest is missing or changed, or a file was added; CheckpointGone
    when keep_checkpoints removed the files. Reads every file once."""
    name = f"Checkpoint {checkpoint.pk} (run {checkpoint.run_id}, step {checkpoint.step})"
    if checkpoint.deleted_at is not None:
        raise CheckpointGone(f"{name}: its files were removed by the run's keep_checkpoints.")
    folder = checkpoint_path(checkpoint=checkpoint)
    if not folder.is_dir():
        raise CheckpointTampered(f"{name}: its folder {checkpoint.folder} is missing.")
    try:
        actual = file_manifest(folder)
    except ValueError as exc:
        raise CheckpointTampered(f"{name}: {exc}.") from exc
    expected = checkpoint.manifest
    missing = sorted(set(expected) - set(actual))
    added = sorted(set(actual) - set(expected))
    changed = sorted(f for f in expected if f in actual and actual[f] != expected[f])
    problems = []
    if changed:
        problems.append(f"changed since it was saved: {', '.join(changed)}")
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    if added:
        problems.append(f"not in its manifest: {', '.join(added)}")
    if problems:
        raise CheckpointTampered(f"{name}: files {'; '.join(problems)}.", files=changed + missing + added)


def checkpoint_archive_name(*, checkpoint: Checkpoint) -> str:
    return f"run-{checkpoint.run_id}-step-{checkpoint.step}-checkpoint-{checkpoint.pk}.tar"


def checkpoint_archive(*, checkpoint: Checkpoint) -> Iterator[bytes]:
    """The checkpoint as an uncompressed tar stream, manifest.json first, then its files in manifest order.

    Call checkpoint_verify first (a response cannot change its status once bytes are out); each file is hashed
    again as it is sent, and a file that changed in between stops the stream, so a client gets a truncated
    archive rather than a valid-looking wrong one. Memory stays at one chunk whatever the checkpoint's size.
    """
    folder = checkpoint_path(checkpoint=checkpoint)
    prefix = f"checkpoint-{checkpoint.pk}"
    manifest = json.dumps(
        {
            "checkpoint": checkpoint.pk,
            "run": checkpoint.run_id,
            "step": checkpoint.step,
            "final": checkpoint.final,
            "resumable": checkpoint.resumable,
            "metrics": checkpoint.metrics,
            "files": checkpoint.manifest,
        },
        indent=2,
        sort_keys=True,
    ).encode()
    yield _header(f"{prefix}/{ARCHIVE_MANIFEST}", len(manifest))
    yield manifest + _padding(len(manifest))
    for name, expected in checkpoint.manifest.items():
        path = folder / name
        size = path.stat().st_size
        yield _header(f"{prefix}/{name}", size)
        digest, sent = hashlib.sha256(), 0
        with open(path, "rb") as handle:
            while sent < size and (block := handle.read(min(_CHUNK, size - sent))):
                digest.update(block)
                sent += len(block)
                yield block
        if sent != size or digest.hexdigest() != expected:
            logger.error("checkpoint %s: %s changed while it was being sent; download stopped", checkpoint.pk, name)
            raise CheckpointTampered(f"Checkpoint {checkpoint.pk}: {name} changed while it was being sent.")
        yield _padding(size)
    yield b"\0" * (2 * _BLOCK)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * ((_BLOCK - size % _BLOCK) % _BLOCK)


def resume_from_error(
    *, checkpoint_id: int | None, kind: str, snapshot_id: int | None, project_id: int | None, config: dict
) -> str | None:
    """Why a run of `kind` on `snapshot_id` cannot resume from checkpoint `checkpoint_id`, or None when it can.

    Same project (another project's checkpoint reads like a missing one), same kind, same snapshot and base model,
    a resumable checkpoint whose files are all there, unchanged."""
    if checkpoint_id is None:
        return None
    checkpoint = Checkpoint.objects.select_related("run").filter(pk=checkpoint_id).first()
    if checkpoint is None or checkpoint.run.project_id != project_id:
        return f"No checkpoint {checkpoint_id}."
    source: TrainingRun = checkpoint.run
    if source.kind != kind:
        return f"Checkpoint {checkpoint.pk} is of a {source.get_kind_display()} run; this is a {kind} run."
    if source.snapshot_id != snapshot_id:
        return (
            f"Checkpoint {checkpoint.pk} was trained on dataset snapshot {source.snapshot_id}; a resumed run trains on "
            "the same snapshot."
        )
    if not checkpoint.resumable:
        what = "a final checkpoint" if checkpoint.final else "a checkpoint"
        return f"Checkpoint {checkpoint.pk} is {what} without optimizer state: it cannot be resumed from."
    if config.get("base_model") is not None and source.config.get("base_model") != config.get("base_model"):
        return (
            f"Checkpoint {checkpoint.pk} continues base model {source.config.get('base_model')!r}; "
            "a resumed run names the same base_model."
        )
    if bool(source.config.get("lora")) != bool(config.get("lora")):
        return f"Checkpoint {checkpoint.pk} was trained with lora={bool(source.config.get('lora'))}; use the same."
    try:
        checkpoint_verify(checkpoint=checkpoint)
    except (CheckpointTampered, CheckpointGone) as exc:
        return exc.detail
    return None
