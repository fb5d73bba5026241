"""The annotation domain's tables. Rules that change rows live in services, not here."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.authz import Role


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
    max_overlap = models.PositiveSmallIntegerField(
        default=5, help_text="Adaptive overlap: items whose votes split get one more judgment at a time, up to this."
    )
    min_agreement = models.FloatField(
        default=0.6, help_text="An item whose winner has a smaller share of the votes counts as split."
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
    revise_window_seconds = models.PositiveIntegerField(
        default=120,
        help_text="Seconds after a judgment in which its annotator may revise it, while the item is open; 0: never.",
    )
    identity_leak_patterns = models.JSONField(
        default=list,
        blank=True,
        help_text="Model or vendor names a generated response must not contain (whole words, any case), as a "
        'JSON list of strings: ["GPT", "OpenAI"].',
    )
    demonstration_min_chars = models.PositiveIntegerField(
        default=20, help_text="Shortest demonstration an annotator may submit, in characters."
    )
    demonstration_max_chars = models.PositiveIntegerField(
        default=8000, help_text="Longest demonstration an annotator may submit, in characters."
    )
    # Qualification (issue 13): a new annotator passes a set of gold items of the project's qualification batches
    # before live items are served (annotation.services.qualification).
    qualification_required = models.BooleanField(
        default=False, help_text="New annotators must pass a qualification set of gold items before live work."
    )
    qualification_threshold = models.FloatField(
        default=0.8, help_text="Share of the qualification items to answer as the gold answer says, 0 to 1."
    )
    qualification_size = models.PositiveIntegerField(default=10, help_text="Qualification items per attempt.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_0_1"),
            models.CheckConstraint(
                condition=Q(qualification_threshold__gte=0) & Q(qualification_threshold__lte=1),
                name="project_qualification_threshold_0_1",
            ),
            models.CheckConstraint(condition=Q(qualification_size__gte=1), name="project_qualification_size_positive"),
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

    class Kind(models.TextChoices):
        COMPARISON = "comparison", "Comparison"
        # Two checkpoints' responses to a held-out prompt set (made by evaluation.services): served like any other
        # batch, left out of dataset snapshots unless asked for.
        EVALUATION = "evaluation", "Evaluation"
        # Gold items that new annotators answer before live work (annotation.services.qualification): served only
        # to annotators qualifying, never as live work, never in dataset snapshots.
        QUALIFICATION = "qualification", "Qualification"
        # Prompts only: annotators write the response (Demonstration), leads review it; served only in
        # demonstration sessions, never in comparison ones, never in preference snapshots.
        DEMONSTRATION = "demonstration", "Demonstration"
        # Already-judged data brought in by an import (annotation.services.labelled): closed on import, served to
        # nobody, never counted as annotator judgments; a dataset snapshot takes it as a source by name.
        LABELLED = "labelled", "Labelled source"

    class SourceFormat(models.TextChoices):
        """What a labelled source's file holds (docs/LABELLED_DATA.md)."""

        HH_RLHF = "hh_rlhf", "HH-RLHF chosen/rejected"
        ITEMS = "items", "Items with a preferred answer"
        ULTRAFEEDBACK = "ultrafeedback", "Scored responses (UltraFeedback style)"
        DEMONSTRATIONS = "demonstrations", "Demonstrations (messages)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="batches")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.COMPARISON)
    criteria_version = models.ForeignKey(CriteriaVersion, on_delete=models.PROTECT, related_name="batches")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # Labelled sources only: the format of every file imported into it (one source, one format).
    source_format = models.CharField(max_length=20, choices=SourceFormat.choices, blank=True)
    # Demonstration batches only: how many annotators write a response to each item.
    writers_per_item = models.PositiveSmallIntegerField(
        default=1, help_text="Demonstration batches: responses wanted per item, each from a different annotator."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "created_at"]
        verbose_name_plural = "batches"
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="batch_name_unique_per_project")]

    def __str__(self) -> str:
        return f"{self.project} / {self.name}"


# How far an item has come toward the judgments it wants, as one expression: with the project's overlap a constant,
# "judgment_count < overlap + extra_judgments" becomes "ITEM_QUEUE_KEY < overlap", a range of the item_queue index.
# The index is not the serving order (that would tell a late annotator which items others disagreed on, issue 11):
# the engine reads the span of ids still short of judgments from it and draws items from that span at random.
ITEM_QUEUE_KEY = F("judgment_count") - F("extra_judgments")


class Item(models.Model):
    """A prompt and two responses. A and B are canonical; which one is shown left is drawn per assignment."""

    # No single-column indexes on these two: item_unique_per_project leads with project and item_queue with batch,
    # and every index is one more entry to write each time a judgment moves judgment_count.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items", db_index=False)
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items", db_index=False)
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
    # Labelled sources only: the preference the imported file states (canonical, a / b / tie), and its vote counts
    # when the file gives them ({"a": n, "b": m}).
    labelled_choice = models.CharField(max_length=3, choices=GoldAnswer.choices, blank=True)
    labelled_votes = models.JSONField(null=True, blank=True)
    # Set when a lead withdraws the item (after a report): served to nobody any more, left out of exports.
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    # Judgments stored so far, kept by the judgment service with a conditional UPDATE so it never passes
    # the project's overlap (+ extra_judgments, which adaptive overlap raises for split items).
    judgment_count = models.PositiveIntegerField(default=0)
    extra_judgments = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "dedupe_key"], name="item_unique_per_project"),
            models.CheckConstraint(
                condition=Q(prompt__gt="") | Q(messages__isnull=False), name="item_has_prompt_or_messages"
            ),
        ]
        # One batch's regular items by how far they have come: the engine (services/assignments.py) reads the span
        # of ids still short of judgments from it, and the dashboard counts those items, without reading the batch.
        indexes = [
            models.Index(F("batch"), F("gold"), ITEM_QUEUE_KEY.desc(), F("id"), name="item_queue"),
            # The few withdrawn items, for exports to leave out: partial, so judging writes nothing to it.
            models.Index(fields=["batch"], condition=Q(withdrawn_at__isnull=False), name="item_withdrawn"),
        ]

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
    sha256 = models.CharField(max_length=64, blank=True, help_text="Of the file as received, when read to its end.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.filename or 'import'} → {self.batch or self.project} ({self.status})"


class Choice(models.TextChoices):
    """A judgment, stored canonically: never as left/right."""

    A = "a", "A is better"
    B = "b", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class AnnotationSession(models.Model):
    """One sitting of one annotator on one project, bounded by the project's minutes and tasks."""

    class Kind(models.TextChoices):
        COMPARISON = "comparison", "Comparing responses"
        DEMONSTRATION = "demonstration", "Writing demonstrations"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sessions")
    # A comparison session serves comparison, evaluation (and qualification) items; a demonstration session only
    # the items of demonstration batches.
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.COMPARISON)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotation_sessions"
    )
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    max_tasks = models.PositiveIntegerField()
    tasks_done = models.PositiveIntegerField(default=0)
    # Set when the task limit is reached; a session that ran out of minutes ends at expires_at.
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["annotator", "project", "-started_at"], name="session_latest")]
        constraints = [
            models.CheckConstraint(
                condition=Q(tasks_done__lte=models.F("max_tasks")), name="session_tasks_within_limit"
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotator} on {self.project} from {self.started_at:%Y-%m-%d %H:%M}"


class Assignment(models.Model):
    """A lease of one item to one annotator, with the side A is shown on drawn at random."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by assignment_open_in_session (session first) and assignment_once_per_annotator (item first): a
    # single-column index of their own would only be more to write, and gave the planner a worse choice to make.
    session = models.ForeignKey(AnnotationSession, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    left_is_a = models.BooleanField()
    leased_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField()
    judged_at = models.DateTimeField(null=True, blank=True)
    # A skip (or a report) ends the lease at once: the row stays, so the engine never serves the item to this
    # annotator again (assignment_once_per_annotator), and the item's slot is free for others.
    skipped_at = models.DateTimeField(null=True, blank=True)
    # Null until a skip: tandem_lease_next inserts assignments naming only the columns it sets.
    skip_reason = models.CharField(max_length=500, null=True, blank=True)

    class Meta:
        ordering = ["leased_at"]
        constraints = [models.UniqueConstraint(fields=["item", "annotator"], name="assignment_once_per_annotator")]
        indexes = [
            models.Index(fields=["item", "lease_expires_at"], name="assignment_active_lease"),
            models.Index(fields=["session", "judged_at"], name="assignment_open_in_session"),
        ]

    def __str__(self) -> str:
        return f"{self.item} to {self.annotator}"


class Judgment(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="judgment")
    # Denormalised from the assignment so metrics read one table at a million rows.
    # Indexed by judgment_once_per_annotator (item first) and judgment_batch_annotator (batch first).
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="judgments", db_index=False)
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="judgments", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="judgments")
    choice = models.CharField(max_length=8, choices=Choice.choices)
    shown_left = models.CharField(
        max_length=1, choices=[("a", "A"), ("b", "B")], help_text="Which response was on the left."
    )
    dimensions = models.JSONField(default=dict, blank=True, help_text="Per-dimension answers, canonical (a / b / tie).")
    justification = models.TextField(blank=True)
    seconds = models.FloatField(help_text="From lease to submit, measured by the server.")
    too_fast = models.BooleanField(default=False)
    is_gold = models.BooleanField(default=False)
    gold_correct = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Revisions (JudgmentRevision) change choice, dimensions and justification in place; counts never move.
    revised_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["item", "annotator"], name="judgment_once_per_annotator")]
        indexes = [models.Index(fields=["batch", "annotator"], name="judgment_batch_annotator")]

    def __str__(self) -> str:
        return f"{self.annotator} on {self.item}: {self.choice}"


class ReportKind(models.TextChoices):
    BROKEN = "broken", "Broken (unreadable, truncated, identical responses…)"
    HARMFUL = "harmful", "Harmful content"
    OUT_OF_SCOPE = "out_of_scope", "Out of scope for these criteria"


class ItemReport(models.Model):
    """An annotator's report that an item should not be judged; the lead may withdraw the item."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="reports")
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="reports")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="item_reports")
    kind = models.CharField(max_length=20, choices=ReportKind.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["assignment"], name="item_report_once_per_assignment")]

    def __str__(self) -> str:
        return f"{self.item} reported {self.kind} by {self.annotator}"


class JudgmentRevision(models.Model):
    """One change of a judgment within the project's revise window: what it was before, and what it became."""

    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="revisions")
    old_choice = models.CharField(max_length=8, choices=Choice.choices)
    old_dimensions = models.JSONField(default=dict, blank=True)
    old_justification = models.TextField(blank=True)
    new_choice = models.CharField(max_length=8, choices=Choice.choices)
    new_dimensions = models.JSONField(default=dict, blank=True)
    new_justification = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"judgment {self.judgment_id}: {self.old_choice} → {self.new_choice}"


class QualificationAttempt(models.Model):
    """One annotator's try at a project's qualification set: in progress until `size` items are answered, then
    scored against the gold answers. A lead's reset sets reset_at: the attempt stays on record and no longer counts."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="qualification_attempts")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="qualification_attempts"
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    size = models.PositiveIntegerField(help_text="Items to answer, the project's qualification size at the start.")
    threshold = models.FloatField(help_text="The share to reach, the project's threshold at the start.")
    # Answered: judged or skipped (a skipped or reported item counts as answered and not correct).
    answered = models.PositiveIntegerField(default=0)
    correct = models.PositiveIntegerField(default=0)
    score = models.FloatField(null=True, blank=True, help_text="correct / size, once finished.")
    passed = models.BooleanField(null=True, blank=True, help_text="Empty while in progress.")
    criteria_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The project's criteria version number when the attempt started."
    )
    reset_at = models.DateTimeField(null=True, blank=True, help_text="When a lead allowed another attempt.")
    reset_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "annotator"],
                condition=Q(finished_at__isnull=True),
                name="qualification_one_in_progress",
            )
        ]
        # tandem_lease_next asks "has this annotator a passed attempt here?" on every `next` of a project that
        # requires qualification.
        indexes = [models.Index(fields=["project", "annotator"], name="qualification_by_annotator")]

    def __str__(self) -> str:
        return f"{self.annotator} qualifying on {self.project} from {self.started_at:%Y-%m-%d %H:%M}"


class Demonstration(models.Model):
    """A response written for a prompt: by an annotator on a demonstration assignment, or imported from a labelled
    source (no assignment, no writer, accepted on import). Only accepted ones go into SFT snapshots.

    A lead's review accepts it (optionally with an edit: `text` stays as written, `edited_text` holds the edit) or
    rejects it with a reason.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for review"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.CASCADE, related_name="demonstration"
    )
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="demonstrations")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="demonstrations", db_index=False)
    writer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="demonstrations"
    )
    text = models.TextField(help_text="As written (or imported); never changed by a review.")
    seconds = models.FloatField(null=True, blank=True, help_text="From lease to submit, measured by the server.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    edited_text = models.TextField(blank=True, help_text="The reviewer's edit, when accepted with edits.")
    review_reason = models.TextField(blank=True, help_text="Why it was rejected (required), or a note on acceptance.")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "writer"], condition=Q(writer__isnull=False), name="demonstration_once_per_writer"
            ),
            models.CheckConstraint(
                condition=~Q(status="rejected") | Q(review_reason__gt=""), name="demonstration_rejected_has_reason"
            ),
            models.CheckConstraint(
                condition=Q(status="accepted") | Q(edited_text=""), name="demonstration_edit_only_when_accepted"
            ),
        ]
        indexes = [models.Index(fields=["batch", "status"], name="demonstration_review_queue")]

    def __str__(self) -> str:
        return f"demonstration {self.pk} on {self.item}"

    @property
    def final_text(self) -> str:
        """What an SFT snapshot takes: the reviewer's edit if any, else the text as written."""
        return self.edited_text or self.text
