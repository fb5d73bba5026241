"""Signals annotation sends so that other apps can follow its events without annotation importing them.

Receivers run inside the sender's transaction: a Celery task is asked for through core.outbox.outbox_enqueue, which
writes a row in that transaction and never talks to the broker inside the request. rewards connects to both in
RewardsConfig.ready().
"""

from django.dispatch import Signal

# Sent by judgment_submit for one stored judgment in every settings.TANDEM_SNAPSHOT_EVERY_N_JUDGMENTS (the ones whose
# id is a multiple of N): a modulo on the hot path instead of a count query or a contended counter row.
# Arguments: judgment (the new Judgment; judgment.batch_id says where).
judgment_recorded = Signal()

# Sent by batch_close when a batch goes from open to closed (not when it was closed already).
# Arguments: batch (the closed Batch), user (who closed it, or None).
batch_closed = Signal()
