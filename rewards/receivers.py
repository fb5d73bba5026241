"""rewards' answers to annotation's signals: snapshot a batch when it closes, refresh open batches every N judgments.

Connected in RewardsConfig.ready(). Both only store a message in the task outbox, in the sender's transaction: it
is sent after the commit (so the worker reads committed rows, and a rolled-back close or judgment sends nothing),
and a broker that is away delays the snapshot instead of stalling or failing the request (core/outbox.py).
"""

from django.conf import settings

from annotation.selectors import NOT_JUDGED_HERE
from core.outbox import outbox_enqueue


def snapshot_on_batch_closed(sender, *, batch, **kwargs) -> None:
    if batch.kind in NOT_JUDGED_HERE:
        return  # written or imported, never judged here: no agreement to compute
    outbox_enqueue(task="rewards.snapshot_batch", args=[batch.pk], key=f"batch:{batch.pk}:snapshot")


def refresh_on_judgments(sender, **kwargs) -> None:
    """judgment_recorded comes once every N judgments over all batches, so any open batch that has grown by N since
    its snapshot is refreshed between N and 2N judgments later; the beat timer covers batches that grow slowly."""
    every_n = settings.TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS
    outbox_enqueue(task="rewards.refresh_open_batches", kwargs={"every_n": every_n})
