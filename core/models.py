"""Models every app shares. The task outbox: Celery messages written in the caller's transaction, sent later."""

from django.db import models
from django.db.models import Q
from django.utils import timezone


class OutboxMessage(models.Model):
    """One Celery task to send. Written in the transaction that decides it (so a rollback sends nothing and a
    commit cannot lose it), sent by core.outbox after the commit or by the drain, with back-off while the broker
    is away. The row, not the broker, is the source of truth for "was this asked for"."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"  # gave up after TANDEM_OUTBOX_MAX_ATTEMPTS

    task = models.CharField(max_length=200, help_text="The Celery task's registered name.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True, help_text="apply_async options: queue, task_id, time limits.")
    key = models.CharField(
        max_length=200, blank=True, db_index=True, help_text='What the message is for, e.g. "run:7".'
    )
    on_give_up = models.CharField(
        max_length=200, blank=True, help_text="Dotted path of a function(message=...) called when sending gives up."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The drain's query: due pending rows, oldest first. Partial, so sent rows cost it nothing.
            models.Index(fields=["next_attempt_at", "id"], condition=Q(status="pending"), name="core_outbox_due"),
            models.Index(fields=["status", "sent_at"], name="core_outbox_status_sent"),
        ]

    def __str__(self) -> str:
        return f"{self.task} ({self.status}, {self.key or self.pk})"
