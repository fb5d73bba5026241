"""rewards' answers to annotation's signals: snapshot a batch when it closes, refresh open batches every N judgments.

Connected in RewardsConfig.ready(). Both only enqueue, after the sender's transaction commits, so that the worker
reads committed rows and a rolled-back close or judgment enqueues nothing.
"""

from functools import partial

from django.conf import settings
from django.db import transaction


def snapshot_on_batch_closed(sender, *, batch, **kwargs) -> None:
    from rewards.tasks import snapshot_batch_task

    transaction.on_commit(partial(snapshot_batch_task.delay, batch.pk))


def refresh_on_judgments(sender, **kwargs) -> None:
    """judgment_recorded comes once every N judgments over all batches, so any open batch that has grown by N since
    its snapshot is refreshed between N and 2N judgments later; the beat timer covers batches that grow slowly."""
    from rewards.tasks import refresh_open_batches_task

    every_n = settings.TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS
    transaction.on_commit(partial(refresh_open_batches_task.delay, every_n=every_n))
