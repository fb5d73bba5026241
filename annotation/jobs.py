"""Imports as jobs (core.jobs): the API and the admin queue a file and answer at once; a worker imports it through
the same service as `manage.py import_items`, which stays synchronous."""

import io
from typing import BinaryIO

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Q

from annotation.models import Batch, Project
from annotation.services.imports import ImportRejected, items_import
from core.authz import Action
from core.jobs import JobFailed, job_submit
from core.models import Job

KIND = "items_import"


def items_import_submit(
    *,
    project: Project,
    batch_name: str,
    upload: UploadedFile,
    keep_hh_gold: bool = False,
    kind: str | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Job:
    """Queues the import of `upload` into the batch; returns the job.

    A batch that is already closed, or of another kind than `kind`, is refused here, at once, by the import service
    itself (ImportRejected with its usual report and record): it refuses before reading a line, so there is nothing
    to queue. It is handed an empty file, so that nothing could be imported here even if the check and the service
    disagreed.
    """
    refused = Q(status=Batch.Status.CLOSED) if kind is None else Q(status=Batch.Status.CLOSED) | ~Q(kind=kind)
    if Batch.objects.filter(refused, project=project, name=batch_name).exists():
        items_import(
            project=project,
            batch_name=batch_name,
            source=io.BytesIO(b""),
            filename=upload.name,
            keep_hh_gold=keep_hh_gold,
            kind=kind,
            created_by=created_by,
        )
    return job_submit(
        kind=KIND,
        project=project,
        action=Action.IMPORT_ITEMS,
        handler="annotation.jobs.items_import_run",
        args={"batch": batch_name, "filename": upload.name or "", "keep_hh_gold": keep_hh_gold, "kind": kind},
        upload=upload,
        created_by=created_by,
    )


def items_import_run(*, job: Job, upload: BinaryIO) -> dict:
    """The worker's side: the import report as the result; a rejected file fails the job with its report."""
    try:
        report = items_import(
            project=job.project,
            batch_name=job.args["batch"],
            source=upload,
            filename=job.args["filename"],
            keep_hh_gold=job.args["keep_hh_gold"],
            kind=job.args.get("kind"),  # jobs queued before batch kinds could be chosen have none
            created_by=job.created_by,
        )
    except ImportRejected as exc:
        raise JobFailed(code=exc.report.code, detail=exc.report.summary(), result=exc.report.as_dict()) from exc
    return report.as_dict()
