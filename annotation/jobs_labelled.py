"""The labelled-source import as a job (core.jobs), as annotation.jobs does the item import: the API and the admin
queue the file and answer at once; a worker imports it through the service `manage.py import_labelled` calls."""

import io
from typing import BinaryIO

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile

from annotation.models import Batch, Project
from annotation.services.imports import ImportRejected
from annotation.services.labelled import labelled_import
from core.authz import Action
from core.jobs import JobFailed, job_submit
from core.models import Job

KIND = "labelled_import"


def labelled_import_submit(
    *,
    project: Project,
    source_name: str,
    upload: UploadedFile,
    format: str | None = None,
    created_by: AbstractBaseUser | None = None,
) -> Job:
    """Queues the import of `upload` into the labelled source; returns the job.

    What the service refuses before reading a line (a batch of that name that is not a labelled source, an unknown
    format, a source of another format) is refused here, at once, by the service itself on an empty file: its usual
    report and record, nothing to queue.
    """
    same_name = Batch.objects.filter(project=project, name=source_name)
    not_a_source = same_name.exclude(kind=Batch.Kind.LABELLED).exists()
    other_format = format is not None and same_name.exclude(source_format=format).exists()
    if not_a_source or other_format:
        labelled_import(
            project=project,
            source_name=source_name,
            file=io.BytesIO(b""),
            filename=upload.name or "",
            format=format,
            user=created_by,
        )
    return job_submit(
        kind=KIND,
        project=project,
        action=Action.IMPORT_ITEMS,
        handler="annotation.jobs_labelled.labelled_import_run",
        args={"source": source_name, "filename": upload.name or "", "format": format},
        upload=upload,
        created_by=created_by,
    )


def labelled_import_run(*, job: Job, upload: BinaryIO) -> dict:
    """The worker's side: the import report as the result; a refused file fails the job with its report."""
    try:
        report = labelled_import(
            project=job.project,
            source_name=job.args["source"],
            file=upload,
            filename=job.args["filename"],
            format=job.args["format"],
            user=job.created_by,
        )
    except ImportRejected as exc:
        raise JobFailed(code=exc.report.code, detail=exc.report.summary(), result=exc.report.as_dict()) from exc
    return report.as_dict()
