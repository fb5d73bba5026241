"""Following jobs in tests (core.jobs): run what the outbox holds for `core.run_job` as the worker would, then read
the job through its URL as an API client does.

The task is taken by the name and arguments its outbox message stores and run eagerly, in this process: the same
task, runner and handler as on a worker, without a broker round trip (tests/core/test_jobs.py also runs one on a
real worker)."""

import time

from django.utils import timezone

import core.tasks  # noqa: F401 - registers core.run_job with the app (a worker autodiscovers it)
from config.celery import app
from core.jobs import RUN_TASK
from core.models import Job, OutboxMessage


def run_queued_jobs() -> list[int]:
    """Runs every queued job from its outbox message, oldest first; returns their ids."""
    ran = []
    for job_id in Job.objects.filter(state=Job.State.QUEUED).order_by("pk").values_list("pk", flat=True):
        message = OutboxMessage.objects.filter(task=RUN_TASK, key=f"job:{job_id}").order_by("-pk").first()
        assert message is not None, f"job {job_id} was queued without an outbox message"
        app.tasks[message.task].apply(args=message.args, kwargs=message.kwargs, throw=True)
        OutboxMessage.objects.filter(pk=message.pk, status=OutboxMessage.Status.PENDING).update(
            status=OutboxMessage.Status.SENT, sent_at=timezone.now(), attempts=1
        )
        ran.append(job_id)
    return ran


def follow_job(client, response) -> dict:
    """The job a 202 answer started, run to its end and read from the URL the answer gave."""
    assert response.status_code == 202, (response.status_code, response.content[:2000])
    url = response["Location"]
    assert url == response.json()["url"]
    run_queued_jobs()
    # In a test whose transactions commit, the message also went to the broker: a worker this test session started
    # (tests.fixtures.worker) may have claimed the job first. It is then finished there; wait for it.
    deadline = time.monotonic() + 60
    while True:
        answer = client.get(url)
        assert answer.status_code == 200, answer.content
        job = answer.json()
        if job["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert job["state"] in ("succeeded", "failed"), job
    return job


def wait_for_job(client, response, *, timeout: float = 60) -> dict:
    """The job a 202 answer started, read from its URL until a real worker (tests.fixtures.worker) has finished it."""
    assert response.status_code == 202, (response.status_code, response.content[:2000])
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(response["Location"]).json()
        if job["state"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout:g} s: {job}"
        time.sleep(0.2)
