"""Which models a run may load: a succeeded run of its own project (`run:ID`, its final checkpoint), one checkpoint of
a run of its project (`checkpoint:ID`, files still there), a folder under the model roots, or a hub id where the
server allows them. Checked before a run is queued and again by the worker before it loads anything.

A refused path always gets the same message, whether or not anything is there, so this check tells nobody what is on
the disk outside the roots: a path that is not under a root once its `..` are folded is refused without touching the
disk at all, and one that is gets every link followed (os.path.realpath) before it is compared with the roots again,
so neither `..` nor a link planted under a root reaches out of them.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from trainer.configs import ConfigError, model_fields

NOT_ALLOWED = (
    "Not an allowed model: name a succeeded run of this project (run:ID), a checkpoint of one of its runs "
    "(checkpoint:ID) or a folder under the model roots."
)
NOT_A_MODEL = (
    "No model in this folder under the model roots: it needs the config.json (and weights) that save_pretrained writes."
)
HUB_OFF = NOT_ALLOWED + " Hub ids are not allowed on this server."
MODEL_MARKER = "config.json"
MAX_CHARS = 1024  # longer than any real path or hub id: refused without touching the disk
_RUN = re.compile(r"run:(\d{1,18})")
_CHECKPOINT = re.compile(r"checkpoint:(\d{1,18})")
# Hugging Face repo ids (huggingface_hub.utils.validate_repo_id): org/name, word characters, "-" and ".".
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}")


@dataclass(frozen=True)
class ResolvedModel:
    stored: str  # what the run's config keeps: run:ID, the folder's resolved path, or the hub id
    load: str  # what the training code passes to from_pretrained
    hub: bool = False


def model_roots() -> list[Path]:
    """settings.TANDEM_MODEL_ROOTS with every link resolved (a root may itself be a link)."""
    return [Path(os.path.realpath(root)) for root in settings.TANDEM_MODEL_ROOTS if str(root).strip()]


def _lexically_inside(path: Path, roots: list[Path]) -> bool:
    """Whether `path`, with `..` folded but no link followed, is under a root as configured or as resolved. Paths
    that are not are refused without a single file-system call, so not even the time an answer takes depends on
    what is outside the roots."""
    configured = [Path(os.path.abspath(root)) for root in settings.TANDEM_MODEL_ROOTS if str(root).strip()]
    normal = Path(os.path.normpath(path))
    return _inside(normal, configured + roots)


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _model_folder(folder: Path, roots: list[Path]) -> bool | None:
    """True for a folder with a config.json, False for no model there, None when one of its entries links out of
    the roots (a weights file made a link to another project's checkpoint, say)."""
    try:
        if not (folder / MODEL_MARKER).is_file():
            return False
        return True if all(_inside(Path(os.path.realpath(entry)), roots) for entry in folder.iterdir()) else None
    except OSError:  # unreadable, a name too long, a loop: not a model we can load
        return False


def _candidates(value: str) -> list[Path]:
    """Where a path may be: as it is when absolute; else under each root (`tiny-demo`), then in the repository
    folder, for the README's `var/models/tiny-demo` (it must still resolve into a root)."""
    path = Path(value)
    if path.is_absolute():
        return [path]
    return [root / path for root in model_roots()] + [Path(settings.BASE_DIR) / path]


def _artifacts_folder(relative: str | Path) -> Path | None:
    """A checkpoint folder (relative to ARTIFACTS_DIR) resolved, if it is a model folder inside ARTIFACTS_DIR with
    no entry linking out of it (the worker writes plain files: a link there would lead to another run's weights)."""
    artifacts = Path(os.path.realpath(settings.ARTIFACTS_DIR))
    real = Path(os.path.realpath(Path(settings.ARTIFACTS_DIR) / relative))
    if not real.is_relative_to(artifacts) or not _model_folder(real, [real]):
        return None
    return real


def _run_checkpoint(*, run_id: int, project_id: int) -> Path | None:
    """A succeeded run's final checkpoint: its final Checkpoint row while its files are there, else the folder every
    run saves its output in (runs/ID/checkpoint)."""
    from trainer.models import Checkpoint, Status, TrainingRun
    from trainer.services.runs import checkpoint_dir

    run = TrainingRun.objects.filter(pk=run_id, project_id=project_id, status=Status.SUCCEEDED).first()
    if run is None:
        return None
    final = Checkpoint.objects.filter(run=run, final=True, deleted_at__isnull=True).order_by("-step").first()
    if final is not None and (folder := _artifacts_folder(final.folder)) is not None:
        return folder
    if not checkpoint_dir(run=run).is_dir():
        return None
    return Path(os.path.realpath(checkpoint_dir(run=run)))


def _checkpoint_folder(*, checkpoint_id: int, project_id: int) -> Path | None:
    """One Checkpoint of a run of the project, whatever the run's status (a lost run keeps what it reached), while
    its files are there: not removed by keep_checkpoints, a model folder inside ARTIFACTS_DIR."""
    from trainer.models import Checkpoint

    checkpoint = Checkpoint.objects.filter(
        pk=checkpoint_id, run__project_id=project_id, deleted_at__isnull=True
    ).first()
    return _artifacts_folder(checkpoint.folder) if checkpoint is not None and checkpoint.folder else None


def model_resolve(*, value: str, project_id: int, field: str = "base_model") -> ResolvedModel:
    """Where `value` may be loaded from for a run of `project_id`, or ConfigError({field: message})."""
    refused = ConfigError({field: NOT_ALLOWED})
    if not isinstance(value, str) or not value or len(value) > MAX_CHARS or "\x00" in value:
        raise refused
    if value.startswith("run:"):
        match = _RUN.fullmatch(value)
        checkpoint = match and _run_checkpoint(run_id=int(match.group(1)), project_id=project_id)
        if not checkpoint:  # another project's run, a failed one and a missing one read the same
            raise refused
        return ResolvedModel(stored=f"run:{int(match.group(1))}", load=str(checkpoint))
    if value.startswith("checkpoint:"):
        match = _CHECKPOINT.fullmatch(value)
        folder = match and _checkpoint_folder(checkpoint_id=int(match.group(1)), project_id=project_id)
        if not folder:  # another project's checkpoint, a deleted one and a missing one read the same
            raise refused
        return ResolvedModel(stored=f"checkpoint:{int(match.group(1))}", load=str(folder))
    roots = model_roots()
    # Every run's checkpoint is under ARTIFACTS_DIR, whichever project it belongs to: only run:ID and checkpoint:ID
    # reach them, even
    # where a model root was set above the artifacts.
    artifacts = Path(os.path.realpath(settings.ARTIFACTS_DIR))
    in_roots_but_no_model = False
    for candidate in _candidates(value):
        if not _lexically_inside(candidate, roots):
            continue
        real = Path(os.path.realpath(candidate))
        if not _inside(real, roots) or real.is_relative_to(artifacts):
            continue
        found = _model_folder(real, roots)
        if found is None:
            raise refused
        if found:
            return ResolvedModel(stored=str(real), load=str(real))
        in_roots_but_no_model = True
    looks_like_hub_id = _HUB_ID.fullmatch(value) is not None and "--" not in value and ".." not in value
    if looks_like_hub_id:
        if settings.TANDEM_ALLOW_HUB_MODELS:
            return ResolvedModel(stored=value, load=value, hub=True)
        raise ConfigError({field: HUB_OFF})
    if in_roots_but_no_model:
        raise ConfigError({field: NOT_A_MODEL})
    raise refused


def config_models_resolve(*, kind: str, config: dict, project_id: int) -> tuple[dict, dict]:
    """(the config as stored, the config as loaded): every model field resolved; ConfigError naming each refusal."""
    stored, load, errors = dict(config), dict(config), {}
    for name in model_fields(kind):
        if config.get(name) is None:
            continue
        try:
            resolved = model_resolve(value=config[name], project_id=project_id, field=name)
        except ConfigError as exc:
            errors.update(exc.errors)
            continue
        stored[name], load[name] = resolved.stored, resolved.load
    if errors:
        raise ConfigError(errors)
    return stored, load


def hub_offline_unless_allowed() -> None:
    """Without TANDEM_ALLOW_HUB_MODELS the worker never reaches a model hub. huggingface_hub reads HF_HUB_OFFLINE
    when imported and checks its flag before every request (transformers asks it too), so both are set."""
    if settings.TANDEM_ALLOW_HUB_MODELS:
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
