"""The annotation domain's tables. Rules that change rows live in services, not here."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    LEAD = "lead", "Annotation lead"
    ML_ENGINEER = "ml_engineer", "ML engineer"


class Stratum(models.TextChoices):
    USAGE = "usage", "Usage"
    SYNTHETIC = "synthetic", "Synthetic"
    ADVERSARIAL = "adversarial", "Adversarial"


class GoldAnswer(models.TextChoices):
    A = "a", "A"
    B = "b", "B"
    TIE = "tie", "Tie"


class TieRule(models.TextChoices):
    # How ties count when votes become a preference pair (used by rewards' aggregation).
    IGNORE_TIES = "ignore_ties", "Ties abstain: the majority of the A/B votes decides"
    TIES_BLOCK = "ties_block", "Ties block: an item with as many tie votes as its majority is excluded"


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    overlap = models.PositiveSmallIntegerField(
        default=3, help_text="Judgments wanted per item, each from a different annotator."
    )
    gold_rate = models.FloatField(default=0.07, help_text="Share of served items that are hidden gold items.")
    session_minutes = models.PositiveIntegerField(default=90)
    session_max_tasks = models.PositiveIntegerField(default=200)
    break_minutes = models.PositiveIntegerField(default=10, help_text="Pause required after a session ends.")
    lease_minutes = models.PositiveIntegerField(
        default=10, help_text="How long an assignment is held before it returns to the pool."
    )
    allow_tie = models.BooleanField(default=True)
    allow_both_bad = models.BooleanField(default=True)
    require_justification = models.BooleanField(default=False)
    min_seconds_per_judgment = models.PositiveIntegerField(
        default=3, help_text="Faster judgments are kept and flagged."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_0_1"),
        ]

    def __str__(self) -> str:
        return self.name


class CriteriaVersion(models.Model):
    """A project's preference criteria at one point in time. Never edited: a change is a new version."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="criteria_versions")
    number = models.PositiveIntegerField()
    # [{"key", "label", "description", "priority"}], priority 1 first.
    dimensions = models.JSONField(default=list, blank=True)
    disqualifiers = models.JSONField(default=list, blank=True, help_text="Faults that make a response lose outright.")
    tie_rule = models.CharField(max_length=20, choices=TieRule.choices, default=TieRule.IGNORE_TIES)
    tie_guidance = models.TextField(blank=True, help_text="What annotators do when responses are equally good.")
    scope = models.TextField(blank=True, help_text="What is judged and what is out of scope.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["project", "-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="criteria_number_unique_per_project")]

    def __str__(self) -> str:
        return f"{self.project} criteria v{self.number}"

    def save(self, *args, **kwargs):
        # Immutability is an invariant of the row, so it is guarded here as well as in the service and admin.
        if self.pk is not None and not self._state.adding:
            raise ValueError("Criteria versions are immutable: create a new version instead.")
        super().save(*args, **kwargs)


class Batch(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="batches")
    name = models.CharField(max_length=200)
    criteria_version = models.ForeignKey(CriteriaVersion, on_delete=models.PROTECT, related_name="batches")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "created_at"]
        verbose_name_plural = "batches"
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="batch_name_unique_per_project")]

    def __str__(self) -> str:
        return f"{self.project} / {self.name}"


class Item(models.Model):
    """A prompt and two responses. A and B are canonical; which one is shown left is drawn per assignment."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=200, blank=True)
    # "id:<external id>" or "sha256:<content hash>": what makes a re-import skip the item.
    dedupe_key = models.CharField(max_length=220)
    prompt = models.TextField(blank=True)
    messages = models.JSONField(null=True, blank=True)
    response_a_text = models.TextField()
    response_a_model = models.CharField(max_length=200, blank=True)
    response_b_text = models.TextField()
    response_b_model = models.CharField(max_length=200, blank=True)
    stratum = models.CharField(max_length=20, choices=Stratum.choices, blank=True)
    category = models.CharField(max_length=200, blank=True)
    gold = models.CharField(max_length=3, choices=GoldAnswer.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "dedupe_key"], name="item_unique_per_project"),
            models.CheckConstraint(
                condition=Q(prompt__gt="") | Q(messages__isnull=False), name="item_has_prompt_or_messages"
            ),
        ]
        indexes = [models.Index(fields=["batch", "gold"])]

    def __str__(self) -> str:
        return self.external_id or f"item {self.pk}"

    @property
    def is_gold(self) -> bool:
        return bool(self.gold)


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "role", "user"]
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} is {self.get_role_display()} on {self.project}"


class ImportRecord(models.Model):
    """What an import did, kept for the admin whether it succeeded or was refused."""

    class Status(models.TextChoices):
        IMPORTED = "imported", "Imported"
        REJECTED = "rejected", "Rejected"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports")
    filename = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    lines = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    strata = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)
    seconds = models.FloatField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.filename or 'import'} → {self.batch or self.project} ({self.status})"
