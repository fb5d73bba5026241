"""Shared set-up for the runs tests: a dataset snapshot made by rewards' export, and a reward-model run on disk."""

import uuid

from django.conf import settings
from django.utils import timezone

from rewards.models import DatasetSnapshot
from rewards.services.datasets import dataset_create
from tests.rewards.test_datasets import agreed, make_batch
from trainer.models import Kind, Status, TrainingRun
from trainer.services.runs import checkpoint_dir, run_output_dir

WORDS = ["apple", "river", "stone", "cloud", "tiger", "piano", "lemon", "forest"]


def make_snapshot(project, *, pairs: int = 24, validation_fraction: float = 0.25) -> DatasetSnapshot:
    """A closed batch of `pairs` agreed items (A wins, except every fourth), exported as a snapshot."""
    items = [
        agreed(f"Tell me about the {WORDS[n % len(WORDS)]} number {n}.", "b" if n % 4 == 0 else "a")
        for n in range(pairs)
    ]
    batch = make_batch(project, items, name=f"train-{uuid.uuid4().hex[:6]}")
    return dataset_create(project=project, batch_ids=[batch.pk], validation_fraction=validation_fraction, seed=1)


def finished_reward_model(snapshot: DatasetSnapshot, *, status: str = Status.SUCCEEDED) -> TrainingRun:
    """A reward-model run as a worker leaves it (row and checkpoint folder), without training one."""
    run = TrainingRun.objects.create(
        project_id=snapshot.project_id,
        kind=Kind.REWARD_MODEL,
        status=status,
        config={"base_model": "tiny"},
        snapshot=snapshot,
        time_limit_seconds=60,
        finished_at=timezone.now(),
    )
    run.output_dir = str(run_output_dir(run=run).relative_to(settings.ARTIFACTS_DIR))
    run.save(update_fields=["output_dir"])
    checkpoint_dir(run=run).mkdir(parents=True, exist_ok=True)
    return run
