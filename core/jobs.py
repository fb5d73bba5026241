"""Jobs: work a request asks for and a Celery worker does, followed by the asker through its row (core.models.Job).

One runner for every kind. An app submits a job with job_submit() (the uploaded file, if any, is streamed to
ARTIFACTS_DIR/uploads/ first; the row and its outbox message are written in one transaction) and names a handler,
`function(*, job, upload) -> dict`, that the worker calls through the `core.run_job` task. The handler returns the
result (JSON), or raises JobFailed with the error (and, for an import, the report) the synchronous call used to
answer; any other exception fails the job with `job_error`. The upload is deleted when the job ends.

Progress and heartbeat. While a job runs, a thread of the worker writes ARTIFACTS_DIR/jobs/<id>.json every
HEARTBEAT_SECONDS: bytes of the upload read so far and the time. It is a file, not the row, because an import holds
SQLite's one write lock for the whole import. A running job whose file has not been written for TANDEM_JOB_LOST_SECONDS
(its worker died) is marked failed, `job_lost`, when it is next read: no cron job has to run first.
"""

import io
import json
import logging
import os
import threading
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.module_loading import import_string

from core.authz import Action, check
from core.models import Job
from core.outbox import outbox_enqueue

logger = logging.getLogger(__name__)

RUN_TASK = "core.run_job"
HEARTBEAT_SECONDS = 1.0
UPLOADS = "uploads"
STALE_UPLOAD_SECONDS = 24 * 3600
READ_BUFFER = 1 << 20


class JobFailed(Exception):
    """A handler's expected refusal: the job fails with {"code", "detail", **extra} and, if given, `result`."""

    def __init__(self, *, code: str, detail: str, result: dict | None = None, **extra):
        super().__init__(detail)
        self.error = {"code": code, "detail": detail, **extra}
        self.result = result


# --- Submitting ---------------------------------------------------------------------------------------------------


def job_submit(
    *,
    kind: str,
    project,
    action: Action,
    handler: str,
    args: dict,
    upload: UploadedFile | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Job:
    """Stores the job and its `core.run_job` message (sent after the commit, core.outbox); returns the queued job.

    The upload is moved or copied in chunks (Django's storage: never read into memory) before the transaction, so
    that SQLite's write lock is not held while a large file is written.
    """
    saved = _upload_save(upload) if upload is not None else ""
    try:
        with transaction.atomic():
            job = Job.objects.create(
                kind=kind,
                project=project,
                action=action,
                handler=handler,
                args=args,
                upload=saved,
                created_by=created_by if created_by is not None and created_by.is_authenticated else None,
            )
            outbox_enqueue(
                task=RUN_TASK,
                args=[job.pk],
                options={"queue": "default"},
                key=f"job:{job.pk}",
                on_give_up="core.jobs.job_not_queued",
            )
    except BaseException:
        _delete_upload(saved)
        raise
    return job


def _uploads_root() -> Path:
    return Path(settings.ARTIFACTS_DIR) / UPLOADS


def _upload_save(upload: UploadedFile) -> str:
    root = _uploads_root()
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_uploads(root)
    suffix = ".gz" if (upload.name or "").endswith(".gz") else ""
    # A name of our own: the client's file name is kept in the job's args, never used as a path.
    name = FileSystemStorage(location=root).save(f"{uuid.uuid4().hex}{suffix}", upload)
    return f"{UPLOADS}/{name}"


def _remove_stale_uploads(root: Path) -> None:
    """Uploads a day old that no queued or running job holds: left by a transaction that rolled back after the file
    was written (the caller's, say), or by a worker killed before it could delete them."""
    cutoff = time.time() - STALE_UPLOAD_SECONDS
    held = None
    for path in root.iterdir():
        with suppress(OSError):
            if path.stat().st_mtime >= cutoff:
                continue
            if held is None:
                live = Job.objects.filter(state__in=[Job.State.QUEUED, Job.State.RUNNING]).exclude(upload="")
                held = set(live.values_list("upload", flat=True))
            if f"{UPLOADS}/{path.name}" not in held:
                path.unlink()


def _delete_upload(relative: str) -> None:
    if relative:
        with suppress(FileNotFoundError):
            (Path(settings.ARTIFACTS_DIR) / relative).unlink()


# --- Running ------------------------------------------------------------------------------------------------------


def job_run(*, job_id: int) -> Job | None:
    """Runs a queued job once: claimed by a conditional UPDATE, so a message delivered twice (the outbox sends at least
    once) runs it once. Returns the finished job, or None if it was not queued."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(state=Job.State.RUNNING, started_at=now)
    if not claimed:
        logger.info("job %s: not queued (already run, running, or gone); nothing to do", job_id)
        return None
    job = Job.objects.select_related("project", "created_by").get(pk=job_id)
    beat = _Heartbeat(job)
    upload = None
    try:
        if job.upload:
            path = Path(settings.ARTIFACTS_DIR) / job.upload
            if not path.is_file():
                logger.error("job %s: its upload %s is not on this worker; is ARTIFACTS_DIR shared?", job.pk, path)
                raise JobFailed(
                    code="job_upload_missing",
                    detail="The uploaded file is not on the worker (the web and worker hosts must share "
                    "ARTIFACTS_DIR). Nothing was done; upload the file again.",
                )
            beat.total = path.stat().st_size
            upload = io.BufferedReader(_Counted(open(path, "rb", buffering=0), beat), buffer_size=READ_BUFFER)  # noqa: SIM115
        beat.start()
        result = import_string(job.handler)(job=job, upload=upload)
    except JobFailed as exc:
        _finish(job, beat, state=Job.State.FAILED, result=exc.result, error=exc.error)
    except Exception as exc:
        logger.exception("job %s (%s) failed", job.pk, job.kind)
        detail = f"The job stopped on an unexpected error: {type(exc).__name__}: {exc}"[:2000]
        _finish(job, beat, state=Job.State.FAILED, result=None, error={"code": "job_error", "detail": detail})
    else:
        _finish(job, beat, state=Job.State.SUCCEEDED, result=result, error=None)
    finally:
        beat.stop()
        if upload is not None:
            upload.close()
        _delete_upload(job.upload)
        with suppress(FileNotFoundError):
            _progress_path(job.pk).unlink()
    return job


def _finish(job: Job, beat: "_Heartbeat", *, state: str, result: dict | None, error: dict | None) -> None:
    total = beat.total or 1
    done = total if state == Job.State.SUCCEEDED else beat.done
    job.state, job.result, job.error, job.finished_at = state, result, error, timezone.now()
    job.progress = {"done": done, "total": total, "unit": beat.unit}
    # Only while it is ours: a job marked lost meanwhile stays failed.
    Job.objects.filter(pk=job.pk, state=Job.State.RUNNING).update(
        state=state, result=result, error=error, finished_at=job.finished_at, progress=job.progress
    )


class _Counted(io.RawIOBase):
    """A raw file that counts the bytes read from it into the heartbeat: the import's progress."""

    def __init__(self, raw: BinaryIO, beat: "_Heartbeat"):
        super().__init__()
        self._raw, self._beat = raw, beat

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        self._beat.done += n or 0
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Heartbeat:
    """Writes the running job's progress file every HEARTBEAT_SECONDS from a thread of its own."""

    def __init__(self, job: Job):
        self.job_id = job.pk
        self.done, self.total = 0, None
        self.unit = "bytes" if job.upload else "steps"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"job-{job.pk}-heartbeat", daemon=True)

    def start(self) -> None:
        self.write()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.write()

    def write(self) -> None:
        path = _progress_path(self.job_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"done": self.done, "total": self.total, "unit": self.unit, "at": time.time()}))
            os.replace(tmp, path)  # readers never see half a file
        except OSError:
            logger.warning("job %s: could not write its progress file %s", self.job_id, path, exc_info=True)


def _progress_path(job_id: int) -> Path:
    return Path(settings.ARTIFACTS_DIR) / "jobs" / f"{job_id}.json"


def job_not_queued(*, message) -> None:
    """The outbox gave up sending the job's message (the broker stayed away): the job fails, its upload goes."""
    job = Job.objects.filter(pk=message.args[0] if message.args else None).first()
    if job is None:
        return
    detail = "The job could not be queued (the task broker was unreachable); submit it again."
    if Job.objects.filter(pk=job.pk, state=Job.State.QUEUED).update(
        state=Job.State.FAILED, error={"code": "job_not_queued", "detail": detail}, finished_at=timezone.now()
    ):
        _delete_upload(job.upload)


# --- Reading ------------------------------------------------------------------------------------------------------


def job_get_for(*, user: AbstractBaseUser, job_id: int, kind: str | None = None) -> Job:
    """The job, if `user` may do its action in its project (core.authz.check: 404 for someone with no role there,
    403 for a member whose role may not); stale running jobs are marked lost first."""
    job = Job.objects.select_related("created_by").filter(pk=job_id).first()
    if job is None or (kind is not None and job.kind != kind):
        raise Http404("No such job.")
    check(user=user, action=Action(job.action), project=job.project_id, what="follow this job")
    return job_check_lost(job=job)


def job_check_lost(*, job: Job, now: float | None = None) -> Job:
    """Marks a running job whose heartbeat stopped as failed (job_lost): its worker died, and a redelivered message
    would not run it again (it is no longer queued)."""
    if job.state != Job.State.RUNNING:
        return job
    now = now or time.time()
    beat = job_progress(job=job).get("at") or (job.started_at.timestamp() if job.started_at else now)
    limit = settings.TANDEM_JOB_LOST_SECONDS
    if now - beat <= limit:
        return job
    detail = f"The worker running this job stopped (no heartbeat for over {limit:g} s); nothing was kept. Submit again."
    error = {"code": "job_lost", "detail": detail}
    finished = timezone.now()
    if Job.objects.filter(pk=job.pk, state=Job.State.RUNNING).update(
        state=Job.State.FAILED, error=error, finished_at=finished
    ):
        _delete_upload(job.upload)
        with suppress(FileNotFoundError):
            _progress_path(job.pk).unlink()
        job.state, job.error, job.finished_at = Job.State.FAILED, error, finished
    else:
        job.refresh_from_db()
    return job


def job_progress(*, job: Job) -> dict:
    """{"done", "total", "unit", "fraction"}: the worker's latest heartbeat while the job runs, else the row's."""
    progress = dict(job.progress or {})
    if job.state == Job.State.RUNNING:
        with suppress(OSError, ValueError):
            progress = json.loads(_progress_path(job.pk).read_text())
    progress.setdefault("done", 0)
    progress.setdefault("total", None)
    progress.setdefault("unit", "bytes" if job.upload or progress.get("unit") == "bytes" else "steps")
    total = progress["total"]
    progress["fraction"] = round(min(1.0, progress["done"] / total), 4) if total else None
    return progress
