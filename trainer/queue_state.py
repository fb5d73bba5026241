"""Reads: where a queued run's message stands, from its rows in the task outbox (core.outbox), so that the API, the
run page and the admin say why a run is not running yet instead of a bare "queued"."""

from datetime import datetime
from typing import TypedDict

from core.models import OutboxMessage
from core.outbox import outbox_latest
from trainer.models import Status, TrainingRun
from trainer.services.runs import run_outbox_key


class QueueState(TypedDict):
    state: str  # waiting_for_broker | waiting_for_worker | failed_to_queue
    attempts: int
    last_error: str
    since: datetime | None


STATES = {
    OutboxMessage.Status.PENDING: "waiting_for_broker",
    OutboxMessage.Status.SENT: "waiting_for_worker",
    OutboxMessage.Status.FAILED: "failed_to_queue",
}
LABELS = {
    "waiting_for_broker": "Queued: waiting for the broker",
    "waiting_for_worker": "Queued: waiting for a worker",
    "failed_to_queue": "Failed to queue",
}


def run_queue_state(*, run: TrainingRun) -> QueueState | None:
    """None unless the run is queued (and was queued through the outbox)."""
    if run.status != Status.QUEUED:
        return None
    message = outbox_latest(key=run_outbox_key(run_id=run.pk))
    if message is None:
        return None
    state = STATES[message.status]
    return QueueState(
        state=state,
        attempts=message.attempts,
        last_error=message.last_error,
        since=message.sent_at if state == "waiting_for_worker" else message.created_at,
    )


def run_queue_label(*, run: TrainingRun, queue: QueueState | None) -> str:
    """The run's status for people, given its run_queue_state: "Queued: waiting for the broker (3 attempts; last
    error: ConnectionError ...)"."""
    if queue is None:
        return run.get_status_display()
    label = LABELS[queue["state"]]
    if queue["state"] != "waiting_for_worker" and queue["last_error"]:
        label += f" ({queue['attempts']} attempts; last error: {queue['last_error'][:200]})"
    return label
