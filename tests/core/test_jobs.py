"""Jobs (core.jobs): what a request queues, a worker runs once, and the asker follows through GET /api/v1/jobs/{id}/:
the upload kept on disk only while the job needs it, progress while it runs, lost and unqueued jobs failed with a
reason, and one import from the API to a real worker and back."""

import json
import os
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.utils import timezone

from annotation.models import ImportRecord, Item
from core import jobs
from core.jobs import job_not_queued, job_progress, job_run, job_submit
from core.models import Job, OutboxMessage
from tests.core.jobs import follow_job, run_queued_jobs, wait_for_job

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    return Path(settings.ARTIFACTS_DIR)


def lines(n: int, start: int = 0) -> bytes:
    return "".join(
        json.dumps({"id": f"j-{i}", "prompt": f"Q{i}?", "response_a": {"text": "a"}, "response_b": {"text": "b"}})
        + "\n"
        for i in range(start, start + n)
    ).encode()


def post_import(client, project, body: bytes, name: str = "items.jsonl", batch: str = "b1"):
    upload = SimpleUploadedFile(name, body)
    return client.post(f"/api/v1/projects/{project.pk}/imports/", {"file": upload, "batch": batch}, format="multipart")


def uploads(artifacts: Path) -> list[Path]:
    root = artifacts / "uploads"
    return sorted(root.iterdir()) if root.exists() else []


# --- The upload -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("memory", [True, False], ids=["in-memory upload", "spooled to a temporary file"])
def test_the_upload_waits_under_artifacts_until_the_job_has_run(memory, project, lead_client, artifacts):
    body = lines(300)
    with override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=10 * len(body) if memory else 100):
        response = post_import(lead_client, project, body, name="../../etc/passwd.jsonl.gz")
    job = Job.objects.get(pk=response.json()["id"])
    (saved,) = uploads(artifacts)
    assert job.upload == f"uploads/{saved.name}"  # a name of ours: the client's name is only kept in args
    assert saved.read_bytes() == body
    assert job.args["filename"] == "passwd.jsonl.gz" != saved.name  # Django keeps only the base name
    message = OutboxMessage.objects.get(key=f"job:{job.pk}")
    assert (message.task, message.args, message.options) == ("core.run_job", [job.pk], {"queue": "default"})
    assert follow_job(lead_client, response)["result"]["created"] == 300
    assert uploads(artifacts) == []


def test_a_refusal_before_queueing_keeps_no_file(project, lead_client, artifacts):
    assert post_import(lead_client, project, lines(1)).status_code == 202
    run_queued_jobs()
    project.batches.update(status="closed")
    response = post_import(lead_client, project, lines(1, start=5), name="late.jsonl")
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["errors"]) == (
        "import_batch_closed",
        [{"line": None, "reason": "batch 'b1' is closed: import into an open batch"}],
    )
    assert Job.objects.count() == 1 and uploads(artifacts) == []
    assert ImportRecord.objects.filter(filename="late.jsonl", status="rejected").exists()


def test_stale_uploads_no_job_holds_are_swept_and_held_ones_kept(project, lead, artifacts):
    root = artifacts / "uploads"
    root.mkdir()
    orphan, held = root / "orphan.jsonl", root / "held.jsonl"
    for path in (orphan, held):
        path.write_bytes(b"{}\n")
        os.utime(path, (time.time() - 2 * 86400,) * 2)
    Job.objects.create(
        project=project, kind="items_import", action="import_items", handler="-", upload="uploads/held.jsonl"
    )
    job_submit(
        kind="items_import",
        project=project,
        action="import_items",
        handler="-",
        args={},
        upload=SimpleUploadedFile("new.jsonl", b"{}\n"),
        created_by=lead,
    )
    assert not orphan.exists() and held.exists()


# --- Running ------------------------------------------------------------------------------------------------------


def test_a_message_delivered_twice_runs_the_job_once(project, lead_client):
    post_import(lead_client, project, lines(5))
    job = Job.objects.get()
    assert run_queued_jobs() == [job.pk]
    assert job_run(job_id=job.pk) is None  # the outbox delivers at least once: a second delivery does nothing
    assert ImportRecord.objects.count() == 1 and Item.objects.count() == 5
    assert Job.objects.get().state == "succeeded"


def half_reader(*, job, upload) -> dict:
    """A handler for the test below: reads half the upload, waits for a heartbeat, reports what a reader would see."""
    upload.read(job.args["half"])
    time.sleep(jobs.HEARTBEAT_SECONDS * 2.5)
    running = Job.objects.get(pk=job.pk)
    return {"seen": job_progress(job=running), "state": running.state}


def test_progress_while_running_is_the_share_of_the_upload_read(project, lead):
    size = 8 * jobs.READ_BUFFER
    job = job_submit(
        kind="test",
        project=project,
        action="import_items",
        handler="tests.core.test_jobs.half_reader",
        args={"half": size // 2},
        upload=SimpleUploadedFile("big.jsonl", b"x" * size),
        created_by=lead,
    )
    run_queued_jobs()
    job.refresh_from_db()
    seen = job.result["seen"]
    assert job.result["state"] == "running"
    assert (seen["unit"], seen["total"]) == ("bytes", size)
    assert size // 2 <= seen["done"] <= size // 2 + jobs.READ_BUFFER  # buffered reads run ahead by one buffer
    assert 0.5 <= seen["fraction"] <= 0.625
    assert job.progress == {"done": size, "total": size, "unit": "bytes"}  # succeeded: all of it


def broken(*, job, upload) -> dict:
    raise RuntimeError("the disk caught fire")


def test_an_unexpected_error_fails_the_job_with_its_reason(project, lead, lead_client, artifacts):
    job = job_submit(
        kind="items_import",
        project=project,
        action="import_items",
        handler="tests.core.test_jobs.broken",
        args={},
        upload=SimpleUploadedFile("x.jsonl", b"{}\n"),
        created_by=lead,
    )
    run_queued_jobs()
    body = lead_client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["state"] == "failed" and body["result"] is None
    assert body["error"] == {
        "code": "job_error",
        "detail": "The job stopped on an unexpected error: RuntimeError: the disk caught fire",
    }
    assert uploads(artifacts) == []


def test_an_upload_the_worker_cannot_find_fails_the_job_and_says_why(project, lead_client, artifacts):
    response = post_import(lead_client, project, lines(3))
    (saved,) = uploads(artifacts)
    saved.unlink()  # as on a worker host that does not share ARTIFACTS_DIR
    job = follow_job(lead_client, response)
    assert (job["state"], job["error"]["code"]) == ("failed", "job_upload_missing")
    assert "must share ARTIFACTS_DIR" in job["error"]["detail"] and str(artifacts) not in job["error"]["detail"]
    assert not ImportRecord.objects.exists()


def test_a_running_job_whose_worker_died_is_failed_as_lost_when_read(project, lead_client, artifacts, settings):
    post_import(lead_client, project, lines(3))
    job = Job.objects.get()
    # A worker claimed it and died: no heartbeat for longer than the limit.
    Job.objects.filter(pk=job.pk).update(state="running", started_at=timezone.now())
    assert lead_client.get(f"/api/v1/jobs/{job.pk}/").json()["state"] == "running"  # still beating, as far as we know
    settings.TANDEM_JOB_LOST_SECONDS = 0
    body = lead_client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["state"] == "failed" and body["error"]["code"] == "job_lost"
    assert "no heartbeat for over 0 s" in body["error"]["detail"] and body["finished_at"]
    assert uploads(artifacts) == []
    assert run_queued_jobs() == []  # not queued any more: a late delivery does nothing


def test_a_job_the_outbox_gave_up_on_fails_and_says_so(project, lead_client, artifacts):
    post_import(lead_client, project, lines(3))
    job = Job.objects.get()
    job_not_queued(message=OutboxMessage.objects.get(key=f"job:{job.pk}"))
    body = lead_client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert (body["state"], body["error"]["code"]) == ("failed", "job_not_queued")
    assert uploads(artifacts) == []


# --- Who may follow a job -----------------------------------------------------------------------------------------


def test_a_job_is_read_by_those_who_may_do_its_action(
    project, lead_client, ml_engineer_client, annotator_client, stranger_client, anon_client
):
    post_import(lead_client, project, lines(1))
    job = Job.objects.get()
    url = f"/api/v1/jobs/{job.pk}/"
    assert lead_client.get(url).status_code == 200
    assert ml_engineer_client.get(url).status_code == 403  # a member whose role may not import
    assert annotator_client.get(url).status_code == 403
    assert stranger_client.get(url).status_code == 404  # no role in the project: as a missing job
    assert anon_client.get(url).status_code == 401
    assert lead_client.get("/api/v1/jobs/999999/").status_code == 404


# --- A real worker ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_import_runs_on_a_real_worker(celery_worker_process, project, lead_client, settings):
    # The worker is another process, with config/settings/test.py's ARTIFACTS_DIR: the upload must be there.
    settings.ARTIFACTS_DIR = str(Path(settings.VAR_DIR) / "test-artifacts")
    response = post_import(lead_client, project, lines(40), name="worker.jsonl")
    upload = Path(settings.ARTIFACTS_DIR) / Job.objects.get(pk=response.json()["id"]).upload
    job = wait_for_job(lead_client, response)
    assert job["state"] == "succeeded", job
    assert (job["result"]["created"], job["result"]["filename"]) == (40, "worker.jsonl")
    assert Item.objects.filter(project=project).count() == 40
    assert not upload.exists()
    assert celery_worker_process.wait_for_log("core.run_job[")
