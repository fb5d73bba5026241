"""A broker outage, for real: a Redis server of the test's own is stopped while an annotator judges, a lead closes a
batch and an ML engineer starts a run. Every request answers at once; when Redis is back, a worker that starts
drains the outbox, the closed batch gets its final snapshot and the run's message reaches the gpu queue."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Assignment, Judgment
from annotation.services import member_add
from config.celery import app
from core.models import OutboxMessage
from rewards.models import AgreementSnapshot
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory
from tests.fixtures.worker import start_worker
from tests.rewards.judging import judge_items
from tests.trainer.runs_fixtures import make_snapshot

pytestmark = [pytest.mark.redis, pytest.mark.worker]
REQUIRE_SERVICES = os.environ.get("TANDEM_REQUIRE_SERVICES") == "1"
FAST_SECONDS = 1.0


class RedisServer:
    """redis-server on a free port, without persistence, that the test stops and starts again."""

    def __init__(self, binary: str):
        self.binary = binary
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_connect_timeout=1)


@pytest.fixture
def redis_server(monkeypatch):
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE_SERVICES:
            pytest.fail("TANDEM_REQUIRE_SERVICES=1 but redis-server is not installed")
        pytest.skip("needs redis-server")
    server = RedisServer(binary)
    server.start()
    # This process sends through it; workers started by the test are configured by their environment.
    # (broker_write_url follows broker_url unless set; patching it too would restore it to this URL afterwards.)
    monkeypatch.setattr(app.conf, "broker_url", server.url)
    assert app.conf.broker_write_url == server.url
    monkeypatch.setenv("REDIS_URL", server.url)
    yield server
    server.stop()


def client_for(project, username: str, role: str) -> APIClient:
    user = UserFactory(username=username)
    member_add(project=project, username=username, role=role)
    client = APIClient()  # a real token, as API users send: the annotator loop's fast path is what is reached
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_requests_answer_at_once_while_redis_is_down_and_the_work_is_done_when_it_is_back(
    transactional_db, redis_server, settings, tmp_path, record_property
):
    settings.TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS = 1  # every judgment enqueues a refresh
    settings.TANDEM_OUTBOX_BACKOFF_SECONDS = 0.01  # due again at once: the drain at worker start takes them
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "tiny" / "config.json").write_text("{}")
    settings.TANDEM_MODEL_ROOTS = [str(tmp_path / "models")]
    Path(settings.ARTIFACTS_DIR).mkdir()

    project = ProjectFactory(name="Outage", overlap=3, gold_rate=0)
    batch = BatchFactory(project=project, name="week 1")
    judge_items(batch, {"r1": ["a", "b"], "r2": ["a", "a"]})
    ItemFactory(batch=batch)  # one more, for the annotator below
    annotator = client_for(project, "ann", "annotator")
    lead = client_for(project, "lead", "lead")
    engineer = client_for(project, "mle", "ml_engineer")
    snapshot = make_snapshot(project)
    session = annotator.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    task = annotator.get(f"/api/v1/sessions/{session}/next/").json()
    OutboxMessage.objects.all().delete()  # what setting up sent is not what this test is about

    redis_server.stop()
    judged, judge_seconds = timed(
        lambda: annotator.post(
            f"/api/v1/assignments/{task['assignment_id']}/judgment/", {"choice": "left"}, format="json"
        )
    )
    assert judged.status_code == 201, judged.content
    assert judge_seconds < FAST_SECONDS, f"a judgment took {judge_seconds:.2f} s with Redis down"
    assert Judgment.objects.filter(assignment=Assignment.objects.get(pk=task["assignment_id"])).exists()

    closed, close_seconds = timed(lambda: lead.post(f"/api/v1/batches/{batch.pk}/close/"))
    assert closed.status_code == 200 and close_seconds < FAST_SECONDS, (closed.status_code, close_seconds)

    body = {"kind": "reward_model", "snapshot": snapshot.pk, "config": {"base_model": "tiny"}}
    started, start_seconds = timed(lambda: engineer.post("/api/v1/runs/", body, format="json"))
    assert started.status_code == 201 and start_seconds < FAST_SECONDS, (started.content, start_seconds)
    run_id = started.json()["id"]
    for name, seconds in [("judgment", judge_seconds), ("close", close_seconds), ("run start", start_seconds)]:
        record_property(f"{name} seconds with Redis down", round(seconds, 3))
    queue = engineer.get(f"/api/v1/runs/{run_id}/").json()["queue_state"]
    assert queue["state"] == "waiting_for_broker" and queue["attempts"] == 1
    assert "Connection refused" in queue["last_error"] or "Error 111" in queue["last_error"], queue

    pending = OutboxMessage.objects.filter(status="pending")
    assert sorted(pending.values_list("task", flat=True)) == [
        "rewards.refresh_open_batches", "rewards.snapshot_batch", "trainer.run_training"
    ]  # fmt: skip
    assert not AgreementSnapshot.objects.filter(batch=batch).exists()

    redis_server.start()  # empty: whatever the broker held is gone; the outbox is the source of truth
    with start_worker(queues="default") as worker:  # no gpu worker: the run's message must wait in its queue
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            OutboxMessage.objects.filter(status="pending").exists()
            or not AgreementSnapshot.objects.filter(batch=batch).exists()
        ):
            time.sleep(0.2)
        snapshot_row = AgreementSnapshot.objects.filter(batch=batch).order_by("-computed_at").first()
        assert snapshot_row is not None, worker.log_text()[-5000:]
        assert snapshot_row.judgment_count == 5  # the final snapshot counts the judgment made during the outage
        assert worker.wait_for_log("core.drain_outbox")
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"sent"}
    assert redis_server.client().llen("gpu") == 1  # the run's message, for a gpu worker
    queue = engineer.get(f"/api/v1/runs/{run_id}/").json()["queue_state"]
    assert queue["state"] == "waiting_for_worker" and queue["last_error"] == ""
