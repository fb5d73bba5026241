"""Runs and the task outbox: a run whose message is not sent yet says why (API, run page, admin); a run the outbox
gives up on fails "Failed to queue"; a run sent but taken by no worker is sent once more, then failed."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError

from core import outbox
from core.models import OutboxMessage
from core.outbox import outbox_drain
from trainer import configs
from trainer.models import Kind, Status, TrainingRun
from trainer.services.runs import run_cancel, run_outbox_key, runs_requeue_unclaimed
from trainer.tasks import mark_lost_runs_task

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts", "model_roots")]
RUNS = "/api/v1/runs/"
REFUSED = "Error 111 connecting to redis:6379. Connection refused."


def refuse():
    raise OperationalError(REFUSED)


def start(client, snapshot) -> dict:
    body = {"kind": "reward_model", "snapshot": snapshot.pk, "config": {"base_model": "tiny"}}
    response = client.post(RUNS, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def messages_of(run_id: int) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(key=run_outbox_key(run_id=run_id)).order_by("pk"))


def test_a_run_started_while_the_broker_is_down_says_so_everywhere_then_goes_out(
    ml_engineer_client, superuser, snapshot, sent, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(outbox, "_broker_connection", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(ml_engineer_client, snapshot)["id"]
    body = ml_engineer_client.get(f"{RUNS}{run_id}/").json()
    assert body["status"] == "queued"
    queue = body["queue_state"]
    assert queue["state"] == "waiting_for_broker" and queue["attempts"] == 1
    assert queue["last_error"] == f"OperationalError: {REFUSED}" and queue["since"]
    assert sent == []
    admin = Client()
    admin.force_login(superuser)
    page = admin.get(f"/runs/{run_id}/").content.decode()
    assert 'data-queue-state="waiting_for_broker"' in page and "Connection refused" in page
    changelist = admin.get("/admin/trainer/trainingrun/").content.decode()
    assert "Queued: waiting for the broker (1 attempts; last error: OperationalError: Error 111" in changelist

    monkeypatch.undo()  # the broker is back; the drain (beat) sends what waited
    monkeypatch.setattr("trainer.tasks.run_training_task.apply_async", lambda args, kwargs, **o: sent.append(o))
    outbox_drain(now=timezone.now() + timedelta(minutes=1))
    run = TrainingRun.objects.get(pk=run_id)
    assert [options["task_id"] for options in sent] == [run.celery_task_id]
    assert sent[0]["soft_time_limit"] > run.time_limit_seconds and sent[0]["time_limit"] > sent[0]["soft_time_limit"]
    queue = ml_engineer_client.get(f"{RUNS}{run_id}/").json()["queue_state"]
    assert queue["state"] == "waiting_for_worker" and queue["last_error"] == ""
    assert "Queued: waiting for a worker" in admin.get("/admin/trainer/trainingrun/").content.decode()


def test_a_run_the_outbox_gives_up_on_fails_with_the_reason_never_stays_queued(
    ml_engineer_client, snapshot, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.TANDEM_OUTBOX_MAX_ATTEMPTS = 3
    monkeypatch.setattr(outbox, "_broker_connection", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(ml_engineer_client, snapshot)["id"]
    now = timezone.now()
    for _ in range(2):
        now += timedelta(hours=1)
        outbox_drain(now=now)
    body = ml_engineer_client.get(f"{RUNS}{run_id}/").json()
    assert body["status"] == "failed" and body["queue_state"] is None
    assert body["error"] == f"Failed to queue: OperationalError: {REFUSED} (after 3 attempts)"
    assert [m.status for m in messages_of(run_id)] == ["failed"]


def test_a_cancelled_run_is_not_failed_by_a_message_given_up_later(
    ml_engineer_client, ml_engineer, snapshot, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.TANDEM_OUTBOX_MAX_ATTEMPTS = 2
    monkeypatch.setattr(outbox, "_broker_connection", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(ml_engineer_client, snapshot)["id"]
    run_cancel(run=TrainingRun.objects.get(pk=run_id), user=ml_engineer)
    outbox_drain(now=timezone.now() + timedelta(hours=1))
    assert TrainingRun.objects.get(pk=run_id).status == Status.CANCELLED


# --- Sent, but no worker took it ---------------------------------------------------------------------------------


@pytest.fixture
def sent_run(ml_engineer_client, snapshot, sent, settings, django_capture_on_commit_callbacks) -> TrainingRun:
    settings.TANDEM_RUN_QUEUE_TIMEOUT_SECONDS = 900
    with django_capture_on_commit_callbacks(execute=True):
        run_id = start(ml_engineer_client, snapshot)["id"]
    assert len(sent) == 1
    return TrainingRun.objects.get(pk=run_id)


def test_a_run_no_worker_takes_is_sent_once_more_then_failed_with_the_reason(
    sent_run, sent, django_capture_on_commit_callbacks
):
    sent_at = messages_of(sent_run.pk)[0].sent_at
    assert runs_requeue_unclaimed(now=sent_at + timedelta(seconds=899)) == []
    with django_capture_on_commit_callbacks(execute=True):
        assert runs_requeue_unclaimed(now=sent_at + timedelta(seconds=901)) == [sent_run.pk]
    assert sent == [[sent_run.pk], [sent_run.pk]]  # the same run, the same task id, a second message
    first, second = messages_of(sent_run.pk)
    assert (first.options["task_id"], second.status) == (sent_run.celery_task_id, "sent")
    assert runs_requeue_unclaimed(now=second.sent_at + timedelta(seconds=899)) == []
    assert runs_requeue_unclaimed(now=second.sent_at + timedelta(seconds=901)) == [sent_run.pk]
    sent_run.refresh_from_db()
    assert sent_run.status == Status.FAILED
    assert sent_run.error.startswith("Not picked up: no worker took the run within 900 s")
    assert "gpu queue" in sent_run.error
    assert len(sent) == 2


def test_the_reaper_task_requeues_unclaimed_runs(sent_run, sent, django_capture_on_commit_callbacks):
    OutboxMessage.objects.filter(key=run_outbox_key(run_id=sent_run.pk)).update(
        sent_at=timezone.now() - timedelta(seconds=901)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert mark_lost_runs_task() == [sent_run.pk]
    assert len(sent) == 2


def test_a_run_waiting_behind_a_busy_gpu_worker_is_in_line_not_lost(sent_run, snapshot):
    sent_at = messages_of(sent_run.pk)[0].sent_at
    later = sent_at + timedelta(hours=5)
    busy = TrainingRun.objects.create(
        project_id=snapshot.project_id,
        kind=Kind.DPO,
        status=Status.RUNNING,
        config=configs.validate_config("dpo", {"base_model": "m"}),
        snapshot=snapshot,
        time_limit_seconds=86400,
        started_at=sent_at - timedelta(hours=1),
        heartbeat_at=later,
    )
    assert runs_requeue_unclaimed(now=later) == []  # a run is running: the queue moves
    busy.status, busy.finished_at = Status.SUCCEEDED, later - timedelta(seconds=600)
    busy.save()
    assert runs_requeue_unclaimed(now=later) == []  # the worker freed up 600 s ago: not yet past 900 s
    assert runs_requeue_unclaimed(now=later + timedelta(seconds=301)) == [sent_run.pk]
