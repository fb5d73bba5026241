"""Why a run cannot be started or cancelled. Each error carries the API's `code` and HTTP status.

A bad configuration is trainer.configs.ConfigError ("invalid_config", with per-field `errors`) and a tampered
snapshot rewards.errors.DatasetTampered ("dataset_tampered"): they reach the API as they are.
"""

from core.errors import TandemError


class RunError(TandemError):
    status, code = 400, "invalid_run"


class RunNotAllowed(RunError):
    status, code = 403, "not_allowed"


class RunNotCancellable(RunError):
    status, code = 409, "not_cancellable"


class RunNotJoinable(RunError):
    """`manage.py join_run` on a run that has no other machine to join, or that is over."""

    status, code = 409, "not_joinable"


class CheckpointTampered(TandemError):
    """A checkpoint's file is missing, was added, or its sha256 differs from the one recorded when it was saved."""

    status, code = 409, "checkpoint_tampered"


class CheckpointGone(TandemError):
    """A checkpoint whose files were removed by its run's keep_checkpoints: the row stays, the weights do not."""

    status, code = 410, "checkpoint_deleted"


def run_failure_message(exc: BaseException) -> str:
    """What a run that ended on `exc` says in its `error`: "Refused: ..." for what a worker refuses a run for at
    start (a snapshot or checkpoint that changed, a config that no longer holds), else the exception's type and
    text. One rule for the in-process path (trainer.services.execute) and every rank of a launched run
    (trainer.launch.entry). Django-free."""
    from rewards.errors import DatasetTampered
    from trainer.configs import ConfigError

    if isinstance(exc, ConfigError):
        return "Refused: " + " ".join(f"{field}: {message}" for field, message in exc.errors.items())
    if isinstance(exc, DatasetTampered | CheckpointTampered | CheckpointGone):
        return f"Refused: {exc.detail}"
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")
