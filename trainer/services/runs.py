"""Starting, cancelling and reaping runs: everything the web process and beat do to a run.

A run is validated completely (role, config, reward model, the snapshot's sha256s) before its row exists, and its
task is sent only after the transaction that made the row commits. The worker side is trainer.services.execute.
"""

import logging
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from rewards.models import DatasetSnapshot
from rewards.services.datasets import dataset_verify
from trainer.configs import NEEDS_REWARD_MODEL, validate_config
from trainer.errors import InvalidRewardModel, RunNotAllowed, RunNotCancellable
from trainer.models import Kind, Status, TrainingRun
from trainer.selectors import run_can_start

logger = logging.getLogger(__name__)

# Past its time limit a run stops at its next step; Celery's soft limit (prefork workers) interrupts a run stuck
# inside one step this long after that, and the hard limit kills the process later still.
SOFT_LIMIT_GRACE_SECONDS = 120
HARD_LIMIT_GRACE_SECONDS = 600


def run_output_dir(*, run: TrainingRun) -> Path:
    return Path(settings.ARTIFACTS_DIR) / "runs" / str(run.pk)


def checkpoint_dir(*, run: TrainingRun) -> Path:
    return run_output_dir(run=run) / "checkpoint"


def _check_reward_model(*, kind: str, snapshot: DatasetSnapshot, reward_model: TrainingRun | None) -> None:
    if kind not in NEEDS_REWARD_MODEL:
        if reward_model is not None:
            raise InvalidRewardModel(f"Only PPO and RLOO runs use a reward model; a {kind} run does not.")
        return
    if reward_model is None:
        raise InvalidRewardModel(f"A {kind} run needs a succeeded reward-model run to score its samples.")
    if reward_model.kind != Kind.REWARD_MODEL:
        raise InvalidRewardModel(
            f"Run {reward_model.pk} is a {reward_model.get_kind_display()} run, not a reward model."
        )
    if reward_model.status != Status.SUCCEEDED:
        raise InvalidRewardModel(
            f"Reward-model run {reward_model.pk} is {reward_model.get_status_display().lower()}; it must have succeeded."
        )
    if reward_model.project_id != snapshot.project_id:
        raise InvalidRewardModel(
            f"Reward-model run {reward_model.pk} belongs to another project than dataset snapshot {snapshot.pk}."
        )
    if not checkpoint_dir(run=reward_model).is_dir():
        raise InvalidRewardModel(f"Reward-model run {reward_model.pk} has no checkpoint on disk any more.")


def run_start(
    *,
    kind: str,
    snapshot: DatasetSnapshot,
    config: dict,
    reward_model: TrainingRun | None = None,
    created_by: AbstractBaseUser | None = None,
    based_on: TrainingRun | None = None,
) -> TrainingRun:
    """Validates everything, stores a queued run and sends its task once the transaction commits.

    created_by None means a trusted caller (the start_run command run on the server); a user must be an ML
    engineer of the snapshot's project (or a superuser). Raises RunNotAllowed, trainer.configs.ConfigError,
    InvalidRewardModel or rewards.errors.DatasetTampered; nothing is stored or queued then.
    """
    if created_by is not None and not run_can_start(user=created_by, project=snapshot.project_id):
        raise RunNotAllowed("Only the project's ML engineers can start training runs.")
    full_config = validate_config(kind, config)
    _check_reward_model(kind=kind, snapshot=snapshot, reward_model=reward_model)
    dataset_verify(snapshot=snapshot)
    with transaction.atomic():
        run = TrainingRun.objects.create(
            project_id=snapshot.project_id,
            kind=kind,
            config=full_config,
            snapshot=snapshot,
            reward_model=reward_model,
            based_on=based_on,
            created_by=created_by,
            time_limit_seconds=full_config["time_limit_seconds"],
            celery_task_id=str(uuid.uuid4()),
        )
        run.output_dir = str(run_output_dir(run=run).relative_to(settings.ARTIFACTS_DIR))
        run.save(update_fields=["output_dir"])
        transaction.on_commit(lambda: _enqueue(run_id=run.pk))
    logger.info("run %s (%s) queued on snapshot %s", run.pk, kind, snapshot.pk)
    return run


def _enqueue(*, run_id: int) -> None:
    from trainer.tasks import run_training_task

    run = TrainingRun.objects.get(pk=run_id)
    try:
        run_training_task.apply_async(
            args=[run.pk],
            task_id=run.celery_task_id,
            soft_time_limit=run.time_limit_seconds + SOFT_LIMIT_GRACE_SECONDS,
            time_limit=run.time_limit_seconds + HARD_LIMIT_GRACE_SECONDS,
        )
    except Exception as exc:
        # A run nobody will ever pick up must not sit in "queued": say why it never started.
        logger.exception("run %s could not be queued", run_id)
        run_finish(run_id=run_id, status=Status.FAILED, error=f"Could not queue the run: {type(exc).__name__}: {exc}")


def run_finish(
    *,
    run_id: int,
    status: str,
    error: str = "",
    error_traceback: str = "",
    from_statuses: tuple[str, ...] = (Status.QUEUED, Status.RUNNING),
    **fields,
) -> bool:
    """Moves an active run to a final status, unless something else already did; True if this call did."""
    updated = TrainingRun.objects.filter(pk=run_id, status__in=from_statuses).update(
        status=status, error=error, error_traceback=error_traceback, finished_at=timezone.now(), **fields
    )
    return bool(updated)


def run_cancel(*, run: TrainingRun, user: AbstractBaseUser | None = None) -> TrainingRun:
    """A queued run is cancelled at once; a running one is asked to stop and stops at its next step."""
    if user is not None and not run_can_start(user=user, project=run.project_id):
        raise RunNotAllowed("Only the project's ML engineers can cancel training runs.")
    who = f" by {user.get_username()}" if user is not None else ""
    if run_finish(run_id=run.pk, status=Status.CANCELLED, error=f"Cancelled{who} before it started.",
                  from_statuses=(Status.QUEUED,), cancel_requested=True):  # fmt: skip
        logger.info("run %s cancelled before it started", run.pk)
    elif TrainingRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(cancel_requested=True):
        logger.info("run %s: cancel requested%s", run.pk, who)
    else:
        run.refresh_from_db()
        raise RunNotCancellable(f"Run {run.pk} is {run.get_status_display().lower()}: there is nothing to cancel.")
    run.refresh_from_db()
    return run


def runs_mark_lost(*, now: datetime | None = None, timeout_seconds: float | None = None) -> list[int]:
    """Running runs whose heartbeat is older than the timeout become lost; runs past their time limit by more
    than the timeout (stuck inside a step that never returns) fail. Returns the ids it changed."""
    now = now or timezone.now()
    timeout = timedelta(
        seconds=settings.TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    )
    changed = []
    running = TrainingRun.objects.filter(status=Status.RUNNING).only(
        "pk", "heartbeat_at", "started_at", "time_limit_seconds"
    )
    for run in running:
        beat = run.heartbeat_at or run.started_at
        if beat is None or beat < now - timeout:
            since = f"since {beat:%Y-%m-%d %H:%M:%S} UTC" if beat else "ever"
            message = (
                f"Lost: no heartbeat {since} (timeout {timeout.total_seconds():g} s). The worker stopped: killed, "
                "out of memory, or its host went away."
            )
            if run_finish(run_id=run.pk, status=Status.LOST, error=message, from_statuses=(Status.RUNNING,)):
                changed.append(run.pk)
                logger.warning("run %s marked lost (last heartbeat %s)", run.pk, beat)
        elif run.started_at and now > run.started_at + timedelta(seconds=run.time_limit_seconds) + timeout:
            message = (
                f"Time limit of {run.time_limit_seconds} s exceeded and the run did not stop at a step; "
                "its worker may need a restart."
            )
            if run_finish(run_id=run.pk, status=Status.FAILED, error=message, from_statuses=(Status.RUNNING,)):
                changed.append(run.pk)
                logger.warning("run %s failed: stuck past its time limit", run.pk)
    return changed
