"""When snapshots are computed: every N judgments (annotation's judgment_recorded signal), on the beat timer, and when
a batch closes; the worker does it, after the commit, never the web request."""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import Assignment, Batch
from annotation.services import member_add
from annotation.services.batches import batch_close
from config.celery import app
from rewards.models import AgreementSnapshot
from rewards.selectors import batches_due_for_snapshot
from rewards.services.snapshots import snapshot_compute, snapshots_refresh_due
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory
from tests.fixtures.worker import start_worker
from tests.rewards.judging import judge, judge_items

WAIT_SECONDS = 60


def wait_for(condition, *, timeout: float = WAIT_SECONDS):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    return condition()


def api_judge(project, username: str, choice: str = "a") -> int | None:
    """One judgment the way an annotator makes it (session, next, judgment); the judged item's id, None if none left."""
    client = APIClient()
    client.force_authenticate(UserFactory(username=username))
    member_add(project=project, username=username, role="annotator")
    session = client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    response = client.get(f"/api/v1/sessions/{session}/next/")
    if response.status_code != 200:
        return None
    assignment = Assignment.objects.get(pk=response.json()["assignment_id"])
    side = "left" if (choice == "a") == assignment.left_is_a else "right"
    posted = client.post(f"/api/v1/assignments/{assignment.pk}/judgment/", {"choice": side}, format="json")
    assert posted.status_code == 201, posted.content
    return assignment.item_id


@pytest.fixture
def open_batch(db):
    project = ProjectFactory(name="Timing", overlap=3, gold_rate=0)
    batch = BatchFactory(project=project, name="live")
    return project, batch


# --- Which batches are due ------------------------------------------------------------------------------------


def test_due_batches_whichever_of_n_judgments_or_age_comes_first(open_batch):
    _, batch = open_batch
    now = timezone.now()

    def due(every_n=5, max_age=300.0, at=None):
        return batches_due_for_snapshot(every_n=every_n, max_age_seconds=max_age, now=at or timezone.now())

    assert due() == []  # no judgment yet
    judge_items(batch, {"r1": ["a", "b"], "r2": ["a", "b"]})
    assert due() == [batch.pk]  # judgments and no snapshot
    snapshot_compute(batch=batch)
    assert due() == []  # fresh and nothing new
    assert due(at=now + timedelta(hours=1)) == []  # old, but nothing new since
    judge_items(batch, {"r1": ["a"], "r2": ["a"]})
    assert due() == []  # 2 new < N = 5, and fresh
    assert due(every_n=2) == [batch.pk]
    assert due(at=timezone.now() + timedelta(seconds=301)) == [batch.pk]  # stale and grown
    batch_close(batch=batch)
    assert due(every_n=1) == []  # closed batches are snapshotted by the close, not refreshed


def test_refresh_computes_the_due_batches_only(open_batch):
    project, batch = open_batch
    quiet = BatchFactory(project=project, name="quiet")
    judge_items(batch, {"r1": ["a"], "r2": ["b"]})
    judge_items(quiet, {"r1": ["a"]})
    snapshot_compute(batch=quiet)  # the earlier batch gets its first snapshot too
    assert AgreementSnapshot.objects.filter(batch=batch).count() == 1
    judge_items(batch, {"r1": ["a", "b", "a"], "r2": ["b", "b", None]})
    assert snapshots_refresh_due(every_n=5, max_age_seconds=300) == [batch.pk]
    assert AgreementSnapshot.objects.filter(batch=batch).latest("computed_at").judgment_count == 7
    assert AgreementSnapshot.objects.filter(batch=batch).count() == 2
    assert AgreementSnapshot.objects.filter(batch=quiet).count() == 1
    assert snapshots_refresh_due(every_n=5, max_age_seconds=300) == []


def test_the_beat_schedule_runs_the_refresh_task_on_the_default_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["rewards-refresh-open-batches"]
    assert entry["task"] in app.tasks and entry["options"]["queue"] == "default"


# --- Every N judgments: the signal, sent cheaply from the judgment service -------------------------------------


@pytest.mark.parametrize("every_n", [1, 10**9])
def test_judgments_enqueue_a_refresh_only_every_n(open_batch, every_n, django_capture_on_commit_callbacks, monkeypatch):
    project, batch = open_batch
    ItemFactory(batch=batch)
    from rewards import tasks

    enqueued = []
    # Sent through the task outbox (core.outbox), which calls apply_async once the transaction has committed.
    monkeypatch.setattr(
        tasks.refresh_open_batches_task, "apply_async", lambda args, kwargs, **o: enqueued.append(kwargs)
    )
    with override_settings(TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS=every_n), django_capture_on_commit_callbacks(execute=True):
        api_judge(project, "r1")
    assert enqueued == ([{"every_n": 1}] if every_n == 1 else [])


# --- With a real worker ----------------------------------------------------------------------------------------


@pytest.mark.worker
@override_settings(TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS=2)
def test_every_n_judgments_the_worker_refreshes_the_batch_without_beat(celery_worker_process):
    project = ProjectFactory(name="Every N", overlap=3, gold_rate=0)
    batch = BatchFactory(project=project, name="live")
    ItemFactory.create_batch(2, batch=batch)
    for n in range(3):
        assert api_judge(project, f"w{n}", "a") is not None
        assert api_judge(project, f"w{n}", "b" if n == 2 else "a") is not None
    # Six judgments, N = 2: the signal fired on three of them; the last refresh counts at least five.
    snapshot = wait_for(lambda: AgreementSnapshot.objects.filter(batch=batch, judgment_count__gte=5).first())
    assert snapshot is not None, "no snapshot from the worker"
    assert snapshot.report["n_annotators"] == 3
    assert celery_worker_process.wait_for_log("rewards.refresh_open_batches")


@pytest.mark.worker
def test_closing_a_batch_through_the_api_makes_the_worker_snapshot_it(celery_worker_process):
    project = ProjectFactory(name="Closing", overlap=3)
    batch = BatchFactory(project=project, name="final")
    judge_items(batch, {"r1": ["a", "b", "a"], "r2": ["a", "b", "b"], "r3": ["a", "a", "b"]})
    lead = UserFactory(username="closer")
    member_add(project=project, username="closer", role="lead")
    client = APIClient()
    client.force_authenticate(lead)
    assert client.post(f"/api/v1/batches/{batch.pk}/close/").status_code == 200
    snapshot = wait_for(lambda: AgreementSnapshot.objects.filter(batch=batch).first())
    assert snapshot is not None and snapshot.judgment_count == 9
    assert Batch.objects.get(pk=batch.pk).status == "closed"
    assert celery_worker_process.wait_for_log("rewards.snapshot_batch")


@pytest.mark.worker
def test_the_beat_timer_refreshes_open_batches(transactional_db, monkeypatch, tmp_path):
    project = ProjectFactory(name="Timer", overlap=3)
    batch = BatchFactory(project=project, name="slow")
    item = ItemFactory(batch=batch)
    for rater in ("r1", "r2"):
        judge(item, rater, "a")  # written straight to the table: no signal, only the timer can notice
    monkeypatch.setenv("TANDEM_SNAPSHOT_REFRESH_SECONDS", "1")
    with start_worker(extra_args=["--beat", "--schedule", str(tmp_path / "beat-schedule")]) as worker:
        snapshot = wait_for(lambda: AgreementSnapshot.objects.filter(batch=batch).first())
        assert snapshot is not None and snapshot.judgment_count == 2, worker.log_text()[-5000:]
