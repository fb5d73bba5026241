"""Batches: closing one. A closed batch serves no more assignments and refuses judgments on leases still open."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Batch
from annotation.signals import batch_closed


@transaction.atomic
def batch_close(*, batch: Batch, user: AbstractBaseUser | None = None) -> tuple[Batch, bool]:
    """Closes the batch now; (batch, closed). Idempotent: a batch already closed is returned as it is (closed False).

    The row is locked so that two closes at once send batch_closed once. The assignment engine only serves items
    of open batches, and judgment_submit refuses a judgment on a closed batch (410 batch_closed).
    """
    locked = Batch.objects.select_for_update().select_related("project", "criteria_version").get(pk=batch.pk)
    if locked.status == Batch.Status.CLOSED:
        return locked, False
    locked.status = Batch.Status.CLOSED
    locked.closed_at = timezone.now()
    locked.save(update_fields=["status", "closed_at"])
    batch_closed.send(sender=Batch, batch=locked, user=user)
    return locked, True
