"""The task outbox: how every app enqueues Celery work without a request ever talking to the broker.

outbox_enqueue() only INSERTs a row in the caller's transaction. After the commit one quick attempt is made to send
it (a short connect timeout, no retry loop, never raising); whatever is not sent then is sent by outbox_drain(),
which beat runs every few seconds (core.drain_outbox) and every worker asks for when it starts. A failed send backs
off exponentially; after TANDEM_OUTBOX_MAX_ATTEMPTS the row is marked failed and its give-up handler (a dotted path
stored with it, e.g. the one that marks a run "Failed to queue") is called. Delivery is at least once: tasks sent
through here must tolerate a duplicate (runs are claimed once; snapshots are recomputed).
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from core.models import OutboxMessage

logger = logging.getLogger(__name__)
ERROR_CHARS = 2000


def outbox_enqueue(
    *,
    task: str,
    args: Iterable = (),
    kwargs: dict | None = None,
    options: dict | None = None,
    key: str = "",
    on_give_up: str = "",
) -> OutboxMessage:
    """Stores a message for `task` in the caller's transaction; it is sent after the commit (never before, never
    if the transaction rolls back). `options` are apply_async's (queue, task_id, soft_time_limit, ...), JSON only.
    No broker I/O happens here."""
    message = OutboxMessage.objects.create(
        task=task, args=list(args), kwargs=kwargs or {}, options=options or {}, key=key, on_give_up=on_give_up
    )
    if settings.TANDEM_OUTBOX_SEND_ON_COMMIT:
        transaction.on_commit(lambda: _send_after_commit(message_id=message.pk), robust=True)
    return message


def _send_after_commit(*, message_id: int) -> None:
    # Runs in the request that committed: it must not raise or wait. A down broker costs one refused (or, for an
    # unreachable host, one timed-out) connect of at most TANDEM_OUTBOX_SEND_TIMEOUT_SECONDS; the drain retries.
    try:
        outbox_send(message_ids=[message_id])
    except Exception:
        logger.exception("outbox: sending message %s after commit failed; the drain will retry it", message_id)


@dataclass
class DrainReport:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    gave_up: list[int] = field(default_factory=list)


def outbox_drain(*, limit: int | None = None, now: datetime | None = None) -> DrainReport:
    """Sends the due pending messages, oldest first, at most `limit` of them."""
    return outbox_send(limit=limit or settings.TANDEM_OUTBOX_DRAIN_LIMIT, now=now)


def outbox_send(
    *, message_ids: list[int] | None = None, limit: int | None = None, now: datetime | None = None
) -> DrainReport:
    """Claims pending messages (the given ones, or the due ones) and sends them, in one transaction.

    The rows stay locked while they are sent: on PostgreSQL a second drain skips them (SKIP LOCKED) instead of
    sending them twice; SQLite serializes writers anyway. Sends are short (see _broker_connection), so the lock
    is too.
    """
    now = now or timezone.now()
    report = DrainReport()
    with transaction.atomic():
        pending = OutboxMessage.objects.select_for_update(skip_locked=True).filter(status=OutboxMessage.Status.PENDING)
        if message_ids is not None:
            pending = pending.filter(pk__in=message_ids)
        else:
            pending = pending.filter(next_attempt_at__lte=now)
        messages = list(pending.order_by("next_attempt_at", "pk")[: limit or None])
        if not messages:
            return report
        try:
            connection = _broker_connection()
        except Exception as exc:  # the broker is away: one attempt for each claimed message, no further I/O
            for message in messages:
                _record_failure(message=message, error=exc, now=now, report=report)
            return report
        with connection:
            for message in messages:
                try:
                    _publish(message=message, connection=connection)
                except Exception as exc:
                    _record_failure(message=message, error=exc, now=now, report=report)
                else:
                    message.status = OutboxMessage.Status.SENT
                    message.sent_at = timezone.now()
                    message.attempts += 1
                    message.last_error = ""
                    message.save(update_fields=["status", "sent_at", "attempts", "last_error"])
                    report.sent.append(message.pk)
    if report.sent:
        logger.info("outbox: sent %s message(s)", len(report.sent))
    return report


def _broker_connection():
    """A connection of its own, with short timeouts and no retry loop: a down broker fails in well under a second
    (a refused connect at once; an unreachable host after TANDEM_OUTBOX_SEND_TIMEOUT_SECONDS)."""
    from config.celery import app

    timeout = settings.TANDEM_OUTBOX_SEND_TIMEOUT_SECONDS
    connection = app.connection_for_write(
        connect_timeout=timeout,
        transport_options={
            "max_retries": 0,  # kombu's default channel would otherwise retry the connect
            "socket_connect_timeout": timeout,  # Redis
            "socket_timeout": timeout,
        },
    )
    try:
        connection.ensure_connection(max_retries=0, timeout=timeout)
    except Exception:
        connection.release()
        raise
    return connection


def _publish(*, message: OutboxMessage, connection) -> None:
    from config.celery import app

    options = {
        **message.options,
        "connection": connection,
        "retry": False,  # the outbox retries, with back-off; kombu's retry would stall the caller
        # Nobody waits on these results; and asking for one would make the Redis result backend subscribe to it,
        # with its own retry loop (~20 s when Redis is down).
        "ignore_result": True,
    }
    task = app.tasks.get(message.task)
    if task is not None:  # through the task, so its routing and defaults apply
        task.apply_async(args=message.args, kwargs=message.kwargs, **options)
    else:
        app.send_task(message.task, args=message.args, kwargs=message.kwargs, **options)


def outbox_backoff_seconds(*, attempts: int) -> float:
    """Delay before the next try after `attempts` failed ones: base, twice that, four times, ... capped."""
    base = settings.TANDEM_OUTBOX_BACKOFF_SECONDS
    return min(settings.TANDEM_OUTBOX_BACKOFF_MAX_SECONDS, base * 2 ** max(0, attempts - 1))


def _record_failure(*, message: OutboxMessage, error: Exception, now: datetime, report: DrainReport) -> None:
    message.attempts += 1
    message.last_error = f"{type(error).__name__}: {error}"[:ERROR_CHARS]
    message.next_attempt_at = now + timedelta(seconds=outbox_backoff_seconds(attempts=message.attempts))
    if message.attempts < settings.TANDEM_OUTBOX_MAX_ATTEMPTS:
        message.save(update_fields=["attempts", "last_error", "next_attempt_at"])
        report.retrying.append(message.pk)
        logger.warning("outbox: %s not sent (attempt %s): %s", message, message.attempts, message.last_error)
        return
    message.status = OutboxMessage.Status.FAILED
    message.save(update_fields=["status", "attempts", "last_error", "next_attempt_at"])
    report.gave_up.append(message.pk)
    logger.error("outbox: gave up on %s after %s attempts: %s", message, message.attempts, message.last_error)
    if message.on_give_up:
        try:
            with transaction.atomic():
                import_string(message.on_give_up)(message=message)
        except Exception:
            logger.exception("outbox: give-up handler %s failed for message %s", message.on_give_up, message.pk)


def outbox_prune(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Deletes sent messages older than TANDEM_OUTBOX_KEEP_SENT_DAYS, at most `batch` per call."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.TANDEM_OUTBOX_KEEP_SENT_DAYS)
    old = OutboxMessage.objects.filter(status=OutboxMessage.Status.SENT, sent_at__lt=cutoff)
    ids = list(old.values_list("pk", flat=True)[:batch])
    return OutboxMessage.objects.filter(pk__in=ids).delete()[0] if ids else 0


def outbox_latest(*, key: str) -> OutboxMessage | None:
    """The newest message stored under `key` (e.g. "run:7"), whatever its status."""
    return OutboxMessage.objects.filter(key=key).order_by("-pk").first()
