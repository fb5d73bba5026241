"""Dataset snapshots as jobs (core.jobs): the API and the admin's Batch action queue one and answer at once; a worker
makes it through the same service as `manage.py export_pairs`, which stays synchronous."""

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser

from annotation.models import Project
from core.authz import Action
from core.jobs import JobFailed, job_submit
from core.models import Job
from rewards.errors import DatasetError
from rewards.models import DatasetSnapshot
from rewards.services.datasets import dataset_batches_check, dataset_create
from rewards.services.sft_datasets import sft_batches_check, sft_dataset_create

KIND = "dataset_create"


def dataset_job_submit(
    *,
    project: Project,
    batch_ids: Sequence[int] | None = None,
    weighting: str,
    validation_fraction: float,
    seed: int,
    created_by: AbstractBaseUser | None = None,
    include_evaluation: bool = False,
    sources: Sequence[str] | None = None,
    kind: str = DatasetSnapshot.Kind.PREFERENCE,
) -> Job:
    """Queues a dataset snapshot (kind "preference", or "sft": rewards.services.sft_datasets); returns the job.
    Batches or sources that are unknown, open, of the wrong kind or missing are refused here, at once, with the
    DatasetError the snapshot itself would raise; "no pairs" (or no accepted demonstrations) is known only once the
    worker has read them, and fails the job."""
    if kind == DatasetSnapshot.Kind.SFT:
        sft_batches_check(project=project, batches=batch_ids, sources=sources)
    else:
        dataset_batches_check(
            project=project, batch_ids=batch_ids, include_evaluation=include_evaluation, sources=sources
        )
    return job_submit(
        kind=KIND,
        project=project,
        action=Action.MAKE_DATASET,
        handler="rewards.jobs.dataset_job_run",
        args={
            "batches": list(batch_ids) if batch_ids is not None else None,
            "weighting": weighting,
            "validation_fraction": validation_fraction,
            "seed": seed,
            "include_evaluation": include_evaluation,
            "sources": list(sources) if sources is not None else None,
            "kind": kind,
        },
        created_by=created_by,
    )


def dataset_job_run(*, job: Job, upload=None) -> dict:
    """The worker's side: the snapshot as GET /api/v1/datasets/{id}/ shows it is the result."""
    from rewards.apis_datasets import DatasetOutputSerializer  # the API's view of a snapshot, rendered once here
    from rewards.selectors import dataset_get

    args = job.args
    try:
        if args.get("kind") == DatasetSnapshot.Kind.SFT:
            snapshot = sft_dataset_create(
                project=job.project,
                batches=args["batches"],
                sources=args.get("sources"),
                validation_fraction=args["validation_fraction"],
                seed=args["seed"],
                user=job.created_by,
            )
        else:
            snapshot = dataset_create(
                project=job.project,
                batch_ids=args["batches"],
                weighting=args["weighting"],
                validation_fraction=args["validation_fraction"],
                seed=args["seed"],
                created_by=job.created_by,
                include_evaluation=args.get("include_evaluation", False),  # jobs queued before it existed: False
                sources=args.get("sources"),
            )
    except DatasetError as exc:
        raise JobFailed(code=exc.code, detail=exc.detail, **exc.extra) from exc
    return dict(DatasetOutputSerializer(dataset_get(snapshot_id=snapshot.pk)).data)
