"""Starting, cancelling and reaping runs: everything the web process and beat do to a run.

A run is validated completely (role, config, models and limits, reward model, the snapshot's sha256s: every problem
reported at once) before its row exists, and its task goes through the task outbox (core.outbox): stored with the row,
sent after the commit, retried while the broker is away, and the run failed "Failed to queue" if the outbox gives up.
The worker side is trainer.services.execute.
"""

import logging
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from core.models import OutboxMessage
from core.outbox import outbox_enqueue
from rewards.errors import DatasetTampered
from rewards.models import DatasetSnapshot
from rewards.services.datasets import dataset_verify
from trainer.capabilities import NoCapableWorker, capability_errors, run_queue
from trainer.configs import KINDS, NEEDS_REWARD_MODEL, POLICY_KINDS, SFT_SNAPSHOT_KINDS, ConfigError, config_check
from trainer.confinement import run_config_confine
from trainer.errors import RunNotAllowed, RunNotCancellable
from trainer.models import Kind, Status, TrainingRun
from trainer.selectors import run_can_start, workers_live

logger = logging.getLogger(__name__)

# Past its time limit a run stops at its next step; Celery's soft limit (prefork workers) interrupts a run stuck
# inside one step this long after that, and the hard limit kills the process later still.
GENERATE_ELSEWHERE = (
    "A generate run samples an evaluation set, not a snapshot: start it with POST /api/v1/eval-sets/{id}/generations/, "
    "manage.py generate or the evaluation set's admin action."
)
SOFT_LIMIT_GRACE_SECONDS = 120
HARD_LIMIT_GRACE_SECONDS = 600


def run_output_dir(*, run: TrainingRun) -> Path:
    return Path(settings.ARTIFACTS_DIR) / "runs" / str(run.pk)


def checkpoint_dir(*, run: TrainingRun) -> Path:
    return run_output_dir(run=run) / "checkpoint"


def _reward_model_error(*, kind: str, snapshot: DatasetSnapshot, reward_model: TrainingRun | None) -> str | None:
    """Why `reward_model` cannot serve a `kind` run on `snapshot`, or None when it can."""
    if kind not in NEEDS_REWARD_MODEL:
        if reward_model is not None:
            return f"Only PPO and RLOO runs use a reward model; a {kind} run does not."
        return None
    if reward_model is None:
        return f"A {kind} run needs a succeeded reward-model run to score its samples."
    if reward_model.kind != Kind.REWARD_MODEL:
        return f"Run {reward_model.pk} is a {reward_model.get_kind_display()} run, not a reward model."
    if reward_model.status != Status.SUCCEEDED:
        return f"Reward-model run {reward_model.pk} is {reward_model.get_status_display().lower()}; it must have succeeded."
    if reward_model.project_id != snapshot.project_id:
        return f"Reward-model run {reward_model.pk} belongs to another project than dataset snapshot {snapshot.pk}."
    if not checkpoint_dir(run=reward_model).is_dir():
        return f"Reward-model run {reward_model.pk} has no checkpoint on disk any more."
    return None


def snapshot_kind_error(*, kind: str, snapshot: DatasetSnapshot | None) -> str | None:
    """Why a `kind` run cannot train on `snapshot` given what the snapshot holds, or None: an SFT run trains on
    demonstrations, every other training kind on preference pairs."""
    if snapshot is None or kind not in KINDS or kind == Kind.GENERATE:
        return None
    wants_sft = kind in SFT_SNAPSHOT_KINDS
    if wants_sft and snapshot.kind != DatasetSnapshot.Kind.SFT:
        return (
            f"Dataset snapshot {snapshot.pk} holds preference pairs; an SFT run trains on an SFT snapshot of "
            "accepted demonstrations."
        )
    if not wants_sft and snapshot.kind == DatasetSnapshot.Kind.SFT:
        return (
            f"Dataset snapshot {snapshot.pk} holds demonstrations (an SFT snapshot); a {kind} run trains on "
            "preference pairs. To start from what they taught, train an SFT run on it and name it as base_model "
            "(run:ID)."
        )
    return None


def run_start_check(
    *,
    kind: str,
    snapshot: DatasetSnapshot | None,
    config: dict,
    reward_model: TrainingRun | None = None,
    project_id: int | None = None,
) -> tuple[dict, dict[str, str]]:
    """(the config as it would be stored, every problem by field): the settings (trainer.configs), the models
    and sizes the project allows (trainer.confinement), and the reward model (under "reward_model_run", the API's
    name). Every stage runs whatever the others found, so one answer lists everything."""
    project_id = snapshot.project_id if snapshot is not None else project_id
    full_config, errors = config_check(kind, config)
    if kind not in KINDS:
        return full_config, errors
    if "config" not in errors:
        try:
            # Models confined to the project and the model roots, sizes to the project's limits. Fields that failed
            # above read None here and are skipped.
            full_config = run_config_confine(kind=kind, config=full_config, project_id=project_id)
        except ConfigError as exc:
            for field, message in exc.errors.items():
                errors.setdefault(field, message)
    reward_model_error = (
        _reward_model_error(kind=kind, snapshot=snapshot, reward_model=reward_model) if snapshot is not None else None
    )
    if reward_model_error:
        errors["reward_model_run"] = reward_model_error
    snapshot_error = snapshot_kind_error(kind=kind, snapshot=snapshot)
    if snapshot_error:
        errors["snapshot"] = snapshot_error
    if kind == Kind.GENERATE and "reward_model_run" not in errors:  # a config field there: a run id to score with
        from trainer.generation import reward_model_run_error

        generate_error = reward_model_run_error(run_id=full_config.get("reward_model_run"), project_id=project_id)
        if generate_error:
            errors["reward_model_run"] = generate_error
    if kind in POLICY_KINDS and full_config.get("resume_from") is not None and "resume_from" not in errors:
        from trainer.checkpoints import resume_from_error  # reads the checkpoint's files: only when one is named

        resume_error = resume_from_error(
            checkpoint_id=full_config["resume_from"],
            kind=kind,
            snapshot_id=snapshot.pk if snapshot is not None else None,
            project_id=project_id,
            config=full_config,
        )
        if resume_error:
            errors["resume_from"] = resume_error
    return full_config, errors


def run_start(
    *,
    kind: str,
    snapshot: DatasetSnapshot | None,
    config: dict,
    reward_model: TrainingRun | None = None,
    created_by: AbstractBaseUser | None = None,
    based_on: TrainingRun | None = None,
    input_errors: dict[str, str] | None = None,
    project_id: int | None = None,
    inputs: dict | None = None,
    sampled_checkpoint=None,
) -> TrainingRun:
    """Validates everything, stores a queued run and sends its task once the transaction commits.

    created_by None means a trusted caller (the start_run command run on the server); a user must be an ML
    engineer of the snapshot's project (or a superuser), else RunNotAllowed before anything else is looked at.
    Then every check runs and the problems come back together: rewards.errors.DatasetTampered (409) when the
    snapshot's files changed, with the other problems in its `errors`; else one trainer.configs.ConfigError
    (`invalid_config`) with a message per field (settings, `base_model`, `reward_model_run`). `input_errors` are
    problems the caller found reading its own input (a --set line, an id that names no run): they are reported
    with the rest, and nothing is stored or queued while there are any.
    """
    if snapshot is None and kind != Kind.GENERATE:
        raise ConfigError({"snapshot": f"A {kind} run trains on a dataset snapshot: name one."})
    if kind == Kind.GENERATE and (snapshot is not None or not (inputs or {}).get("prompts")):
        raise ConfigError({"kind": GENERATE_ELSEWHERE})
    project_id = snapshot.project_id if snapshot is not None else project_id
    if created_by is not None and not run_can_start(user=created_by, project=project_id):
        raise RunNotAllowed("Only the project's ML engineers can start training runs.")
    full_config, errors = run_start_check(
        kind=kind, snapshot=snapshot, config=config, reward_model=reward_model, project_id=project_id
    )
    errors.update(input_errors or {})  # the caller's reading of a field is the more precise one
    if snapshot is not None:
        try:
            dataset_verify(snapshot=snapshot)
        except DatasetTampered as exc:
            if errors:
                raise DatasetTampered(exc.detail, errors=errors) from exc
            raise
    if errors:
        raise ConfigError(errors)
    # What the live workers offer (docs/SCALING.md): checked once the config itself is sound, so its own problems
    # come first; with no live worker nothing is refused here (one may still start).
    workers = workers_live()
    worker_errors = capability_errors(kind=kind, config=full_config, workers=workers)
    if worker_errors:
        raise NoCapableWorker(worker_errors)
    with transaction.atomic():
        run = TrainingRun.objects.create(
            project_id=project_id,
            kind=kind,
            config=full_config,
            snapshot=snapshot,
            reward_model=reward_model,
            based_on=based_on,
            inputs=inputs or {},
            sampled_checkpoint=sampled_checkpoint,
            resume_from_id=full_config.get("resume_from") if kind in POLICY_KINDS else None,
            created_by=created_by,
            time_limit_seconds=full_config["time_limit_seconds"],
            celery_task_id=str(uuid.uuid4()),
        )
        run.output_dir = str(run_output_dir(run=run).relative_to(settings.ARTIFACTS_DIR))
        run.save(update_fields=["output_dir"])
        _enqueue(run=run, workers=workers)  # a row in the outbox, in this transaction: sent after the commit
    logger.info("run %s (%s) queued on %s", run.pk, kind, f"snapshot {snapshot.pk}" if snapshot else "no snapshot")
    return run


def run_outbox_key(*, run_id: int) -> str:
    """Where a run's messages are found in the task outbox (core.outbox): its queue state is read from them."""
    return f"run:{run_id}"


def _enqueue(*, run: TrainingRun, workers: list | None = None) -> None:
    """The run's message, through the outbox, to the queue that fits it among `workers` (the live ones when None)."""
    outbox_enqueue(
        task="trainer.run_training",
        args=[run.pk],
        options={
            "task_id": run.celery_task_id,
            # `gpu`, or for a multi-process run the smallest `gpu-N` queue a live worker serves that fits it
            "queue": run_queue(config=run.config, workers=workers_live() if workers is None else workers),
            "soft_time_limit": run.time_limit_seconds + SOFT_LIMIT_GRACE_SECONDS,
            "time_limit": run.time_limit_seconds + HARD_LIMIT_GRACE_SECONDS,
        },
        key=run_outbox_key(run_id=run.pk),
        on_give_up="trainer.services.runs.run_queue_failed",
    )


def run_queue_failed(*, message: OutboxMessage) -> None:
    """The outbox gave up sending a run's message: the run fails with the reason, it never stays "queued"."""
    run_id = int(message.key.removeprefix("run:"))
    error = f"Failed to queue: {message.last_error} (after {message.attempts} attempts)"
    if run_finish(run_id=run_id, status=Status.FAILED, error=error, from_statuses=(Status.QUEUED,)):
        logger.error("run %s failed to queue: %s", run_id, message.last_error)


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


def runs_requeue_unclaimed(*, now: datetime | None = None, timeout_seconds: float | None = None) -> list[int]:
    """Queued runs whose message was sent but that no worker took: sent once more through the outbox the first
    time, failed with the reason the second. Returns the ids it changed.

    The clock runs only while the GPU workers are idle (no run running, none started or finished more recently
    than the message was sent): a run waiting behind another one on the only GPU worker is in line, not lost.
    """
    now = now or timezone.now()
    timeout = settings.TANDEM_RUN_QUEUE_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    if TrainingRun.objects.filter(status=Status.RUNNING).exists():
        return []
    worked = TrainingRun.objects.filter(started_at__isnull=False).aggregate(
        started=Max("started_at"), finished=Max("finished_at")
    )
    last_activity = max((t for t in worked.values() if t is not None), default=None)
    changed = []
    for run in TrainingRun.objects.filter(status=Status.QUEUED).only("pk", "celery_task_id", "time_limit_seconds"):
        messages = list(OutboxMessage.objects.filter(key=run_outbox_key(run_id=run.pk)).order_by("pk"))
        if not messages or messages[-1].status != OutboxMessage.Status.SENT:
            continue  # never sent through the outbox, or still being sent: the outbox's back-off applies
        waiting_since = max(messages[-1].sent_at, last_activity or messages[-1].sent_at)
        if waiting_since > now - timedelta(seconds=timeout):
            continue
        if len(messages) == 1:
            with transaction.atomic():
                _enqueue(run=run)
            changed.append(run.pk)
            logger.warning("run %s: no worker took it within %g s; sent once more", run.pk, timeout)
            continue
        error = (
            f"Not picked up: no worker took the run within {timeout:g} s, and again after it was sent a second "
            "time. Is a worker serving the gpu queue running?"
        )
        if run_finish(run_id=run.pk, status=Status.FAILED, error=error, from_statuses=(Status.QUEUED,)):
            changed.append(run.pk)
            logger.error("run %s failed: no worker took it twice", run.pk)
    return changed
