"""The task outbox (core/outbox.py): rows written in the caller's transaction, sent after the commit or by the
drain, backed off while the broker is away, given up after the configured attempts, never sent twice by two
drains at once. The broker is replaced here (see test_outbox_outage.py for a real Redis that stops)."""

import os
import threading
from contextlib import nullcontext
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from config.celery import app, ping
from core import outbox
from core.models import OutboxMessage
from core.outbox import outbox_backoff_seconds, outbox_drain, outbox_enqueue, outbox_prune
from core.tasks import drain_outbox_task, drain_when_a_worker_starts

REQUIRE_SERVICES = os.environ.get("TANDEM_REQUIRE_SERVICES") == "1"
REFUSED = "Error 111 connecting to 127.0.0.1:6379. Connection refused."
GIVEN_UP: list[int] = []


def record_give_up(*, message: OutboxMessage) -> None:
    """A give-up handler, named by its dotted path as callers name theirs."""
    GIVEN_UP.append(message.pk)


@pytest.fixture
def published(monkeypatch) -> list[dict]:
    """What reaches the broker: every tandem.ping message, with its options."""
    calls = []
    monkeypatch.setattr(ping, "apply_async", lambda args, kwargs, **options: calls.append({"args": args, **options}))
    return calls


@pytest.fixture
def broker_down(monkeypatch):
    def refuse():
        raise OperationalError(REFUSED)

    monkeypatch.setattr(outbox, "_broker_connection", refuse)


def enqueue(**extra) -> OutboxMessage:
    return outbox_enqueue(task="tandem.ping", **extra)


# --- Enqueue: a row in the caller's transaction, sent after the commit -----------------------------------------


def test_a_message_is_stored_in_the_transaction_and_sent_only_after_the_commit(
    db, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with transaction.atomic():
            message = enqueue(args=[1, "a"], options={"queue": "default"}, key="thing:1")
        assert published == []  # stored, not sent: no broker I/O inside the transaction
    assert OutboxMessage.objects.get(pk=message.pk).status == "pending"
    for callback in callbacks:
        callback()
    assert published == [
        {"args": [1, "a"], "queue": "default", "connection": published[0]["connection"], "retry": False,
         "ignore_result": True}
    ]  # fmt: skip
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == ("sent", 1, "")
    assert message.sent_at is not None


def test_a_rolled_back_transaction_stores_and_sends_nothing(db, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        enqueue(key="rolled-back")
        raise RuntimeError("the caller failed after enqueueing")
    assert not OutboxMessage.objects.filter(key="rolled-back").exists()
    assert published == []


def test_a_broker_that_is_down_costs_the_caller_nothing_and_the_drain_retries(
    db, published, broker_down, django_capture_on_commit_callbacks, monkeypatch
):
    with django_capture_on_commit_callbacks(execute=True):
        message = enqueue(key="down")  # the attempt after the commit fails: no exception reaches the caller
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("pending", 1)
    assert message.last_error == f"OperationalError: {REFUSED}"
    assert message.next_attempt_at > timezone.now()
    assert outbox_drain().sent == []  # not due yet: backing off
    monkeypatch.undo()  # the broker is back
    ping_calls = []
    monkeypatch.setattr(ping, "apply_async", lambda args, kwargs, **options: ping_calls.append(args))
    report = outbox_drain(now=message.next_attempt_at)
    assert report.sent == [message.pk] and ping_calls == [[]]
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, "")


def test_an_error_inside_the_send_after_commit_is_logged_not_raised(
    db, monkeypatch, django_capture_on_commit_callbacks
):
    def explode(**kwargs):
        raise RuntimeError("database went away mid-send")

    monkeypatch.setattr(outbox, "outbox_send", explode)
    with django_capture_on_commit_callbacks(execute=True):
        message = enqueue()
    assert OutboxMessage.objects.get(pk=message.pk).status == "pending"  # the drain will send it


def test_with_send_on_commit_off_only_the_drain_sends(db, published, settings, django_capture_on_commit_callbacks):
    settings.TANDEM_OUTBOX_SEND_ON_COMMIT = False
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        message = enqueue()
    assert callbacks == [] and published == []
    assert outbox_drain().sent == [message.pk]
    assert len(published) == 1


# --- Back-off and giving up -------------------------------------------------------------------------------------


def test_back_off_doubles_from_the_base_up_to_the_cap(settings):
    settings.TANDEM_OUTBOX_BACKOFF_SECONDS = 2
    settings.TANDEM_OUTBOX_BACKOFF_MAX_SECONDS = 300
    delays = [outbox_backoff_seconds(attempts=n) for n in range(1, 12)]
    assert delays == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


def test_each_failed_drain_backs_off_and_the_last_attempt_gives_up(db, broker_down, settings):
    settings.TANDEM_OUTBOX_SEND_ON_COMMIT = False
    settings.TANDEM_OUTBOX_MAX_ATTEMPTS = 4
    settings.TANDEM_OUTBOX_BACKOFF_SECONDS = 10
    GIVEN_UP.clear()
    message = enqueue(on_give_up="tests.core.test_outbox.record_give_up")
    now = timezone.now()
    for attempt, delay in [(1, 10), (2, 20), (3, 40)]:
        assert outbox_drain(now=now).retrying == [message.pk]
        message.refresh_from_db()
        assert message.attempts == attempt and message.status == "pending"
        assert message.next_attempt_at == now + timedelta(seconds=delay)
        assert outbox_drain(now=message.next_attempt_at - timedelta(seconds=1)).retrying == []  # not due
        now = message.next_attempt_at
    assert outbox_drain(now=now).gave_up == [message.pk]
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 4)
    assert [message.pk] == GIVEN_UP
    assert outbox_drain(now=now + timedelta(days=1)).retrying == []  # a failed message is never tried again


def test_one_bad_message_does_not_hold_up_the_others(db, settings, monkeypatch):
    settings.TANDEM_OUTBOX_SEND_ON_COMMIT = False
    bad, good = enqueue(key="bad"), enqueue(key="good")
    sent = []

    def publish(*, message, connection):
        if message.key == "bad":
            raise TypeError("cannot serialize")
        sent.append(message.key)

    monkeypatch.setattr(outbox, "_publish", publish)
    report = outbox_drain()
    assert report.sent == [good.pk] and report.retrying == [bad.pk] and sent == ["good"]


def test_the_drain_takes_the_oldest_due_messages_first_up_to_its_limit(db, published, settings):
    settings.TANDEM_OUTBOX_SEND_ON_COMMIT = False
    messages = [enqueue(args=[n]) for n in range(5)]
    assert outbox_drain(limit=2).sent == [m.pk for m in messages[:2]]
    assert outbox_drain(limit=10).sent == [m.pk for m in messages[2:]]
    assert [call["args"] for call in published] == [[n] for n in range(5)]


def test_old_sent_messages_are_pruned(db, settings):
    settings.TANDEM_OUTBOX_KEEP_SENT_DAYS = 7
    old = OutboxMessage.objects.create(task="tandem.ping", status="sent", sent_at=timezone.now() - timedelta(days=8))
    recent = OutboxMessage.objects.create(task="tandem.ping", status="sent", sent_at=timezone.now())
    pending = OutboxMessage.objects.create(task="tandem.ping")
    assert outbox_prune() == 1
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}
    assert old.pk not in OutboxMessage.objects.values_list("pk", flat=True)


# --- Who drains: beat, every worker that starts, the command -----------------------------------------------------


def test_beat_drains_every_few_seconds_on_the_default_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["core-drain-outbox"]
    assert entry["task"] == "core.drain_outbox" and entry["task"] in app.tasks
    assert entry["options"]["queue"] == "default"
    assert entry["schedule"] <= 10 and entry["options"]["expires"] > entry["schedule"]  # no backlog of drains


def test_a_worker_that_starts_asks_for_a_drain(monkeypatch):
    asked = []
    monkeypatch.setattr(drain_outbox_task, "apply_async", lambda **options: asked.append(options))
    drain_when_a_worker_starts(sender=None)
    assert asked == [{"queue": "default", "retry": False}]

    def refuse(**options):
        raise OperationalError(REFUSED)

    monkeypatch.setattr(drain_outbox_task, "apply_async", refuse)
    drain_when_a_worker_starts(sender=None)  # logged, never raised: the worker starts anyway


def test_the_drain_task_sends_and_reports(db, published, settings):
    settings.TANDEM_OUTBOX_SEND_ON_COMMIT = False
    enqueue()
    assert drain_outbox_task.apply().get() == {"sent": 1, "retrying": 0, "gave_up": 0}


def test_the_command_drains_and_all_ignores_the_back_off(db, published, broker_down, settings, monkeypatch):
    settings.TANDEM_OUTBOX_SEND_ON_COMMIT = False
    enqueue()
    out = StringIO()
    call_command("drain_outbox", stdout=out)
    assert out.getvalue().strip() == "sent 0, will retry 1, gave up 0; 1 pending"
    monkeypatch.setattr(outbox, "_broker_connection", lambda: nullcontext())
    call_command("drain_outbox", stdout=(out := StringIO()))
    assert out.getvalue().strip() == "sent 0, will retry 0, gave up 0; 1 pending"  # backing off
    call_command("drain_outbox", "--all", stdout=(out := StringIO()))
    assert out.getvalue().strip() == "sent 1, will retry 0, gave up 0; 0 pending"
    assert len(published) == 1


# --- Two drains at once (PostgreSQL's row locks) -----------------------------------------------------------------


@pytest.mark.postgres
def test_two_drains_at_once_never_send_a_message_twice(transactional_db, settings, monkeypatch):
    if connection.vendor != "postgresql":
        reason = f"needs PostgreSQL's SKIP LOCKED; the test database is {connection.vendor}"
        if REQUIRE_SERVICES:
            pytest.fail(f"TANDEM_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    settings.TANDEM_OUTBOX_SEND_ON_COMMIT = False
    ids = [enqueue(args=[n]).pk for n in range(6)]
    sent: list[tuple[str, int]] = []
    first_is_held, release = threading.Event(), threading.Event()

    def publish(*, message, connection):
        sent.append((threading.current_thread().name, message.pk))
        if threading.current_thread().name == "slow":
            first_is_held.set()
            assert release.wait(30)

    monkeypatch.setattr(outbox, "_publish", publish)
    monkeypatch.setattr(outbox, "_broker_connection", lambda: nullcontext())

    def drain(limit: int) -> None:
        try:
            outbox_drain(limit=limit)
        finally:
            connection.close()

    slow = threading.Thread(target=drain, args=(3,), name="slow")
    slow.start()
    assert first_is_held.wait(30)  # the slow drain holds the three oldest rows, mid-send
    fast = threading.Thread(target=drain, args=(10,), name="fast")
    fast.start()
    fast.join(30)
    assert not fast.is_alive(), "the second drain waited for the first one's rows instead of skipping them"
    release.set()
    slow.join(30)
    assert sorted(pk for _, pk in sent) == ids  # every message once, none twice
    assert {pk for name, pk in sent if name == "fast"} == set(ids[3:])
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}
