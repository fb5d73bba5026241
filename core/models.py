"""Models every app shares: the task outbox (Celery messages written in the caller's transaction, sent later) and
jobs (work a request asked for, done by a worker, followed by the asker)."""

from django.conf import settings
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


class Job(models.Model):
    """Work a request asked for and a worker does (core.jobs): an import of a file, a dataset snapshot. The row is
    what the asker follows (GET /api/v1/jobs/{id}/): its state, times, progress, and at the end the result or the
    error, as the synchronous call used to answer them."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=50, help_text='What the job does, e.g. "items_import".')
    # A string reference: core imports no domain app, and a project's jobs go with it.
    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="jobs")
    action = models.CharField(max_length=50, help_text="The core.authz action a user needs to read the job.")
    handler = models.CharField(max_length=200, help_text="Dotted path of the function(job=..., upload=...) it runs.")
    args = models.JSONField(default=dict, blank=True, help_text="The handler's arguments, as JSON.")
    upload = models.CharField(
        max_length=300, blank=True, help_text="The uploaded file, relative to ARTIFACTS_DIR; deleted after the job."
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    progress = models.JSONField(default=dict, blank=True, help_text='{"done", "total", "unit"} at the last save.')
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True, help_text='{"code", "detail"} when the job failed.')
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"], name="core_job_project_recent")]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.state})"
