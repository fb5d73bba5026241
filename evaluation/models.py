"""Held-out evaluation prompt sets, the generation runs made from them, evaluation batches and their settings.

Rows here are written by evaluation.services only. A set is immutable (a new file is a new version), and so is an
evaluation batch's record of which side holds the candidate.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class EvalSet(models.Model):
    """One version of a project's held-out prompts, imported whole from a JSONL file. Never edited."""

    project = models.ForeignKey("annotation.Project", on_delete=models.PROTECT, related_name="eval_sets")
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    prompt_count = models.PositiveIntegerField()
    strata = models.JSONField(default=dict, help_text="Prompts per stratum.")
    sha256 = models.CharField(max_length=64, help_text="Of the prompt file the generate runs read.")
    path = models.CharField(max_length=500, help_text="The prompt file, relative to ARTIFACTS_DIR.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name", "-version"]
        verbose_name = "evaluation set"
        constraints = [
            models.UniqueConstraint(fields=["project", "name", "version"], name="evalset_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Evaluation sets are immutable: import a new version instead.")
        super().save(*args, **kwargs)


class EvalPrompt(models.Model):
    eval_set = models.ForeignKey(EvalSet, on_delete=models.CASCADE, related_name="prompts")
    external_id = models.CharField(max_length=200)
    prompt = models.TextField(blank=True)
    messages = models.JSONField(null=True, blank=True)
    stratum = models.CharField(max_length=50, blank=True, help_text="usage, synthetic, adversarial, red_team...")
    category = models.CharField(max_length=200, blank=True)
    reference = models.TextField(blank=True)
    # sha256 of the prompt normalised as the snapshot split groups prompts (rewards.services.datasets.prompt_group):
    # what the held-out check compares with the training snapshots' prompts.
    group = models.CharField(max_length=64, db_index=True)

    class Meta:
        ordering = ["eval_set", "id"]
        verbose_name = "evaluation prompt"
        constraints = [
            models.UniqueConstraint(fields=["eval_set", "external_id"], name="evalprompt_id_unique_per_set"),
            models.CheckConstraint(
                condition=Q(prompt__gt="") | Q(messages__isnull=False), name="evalprompt_has_prompt_or_messages"
            ),
        ]

    def __str__(self) -> str:
        return self.external_id


class Sampled(models.Model):
    """A generate run on an evaluation set: what the leaderboard calls a player is `model_key` (one checkpoint, or
    one base-model folder), whatever runs sampled it."""

    run = models.OneToOneField("trainer.TrainingRun", on_delete=models.PROTECT, related_name="sampled")
    eval_set = models.ForeignKey(EvalSet, on_delete=models.PROTECT, related_name="generation_runs")
    model_key = models.CharField(max_length=600, help_text="checkpoint:ID or base:<folder>.")
    label = models.CharField(max_length=300, help_text="How pages name the model: 'run 12 step 40', 'base tiny'.")
    overlap_allowed = models.BooleanField(default=False)
    overlap_ids = models.JSONField(
        default=list, blank=True, help_text="Prompt ids found in the lineage's training snapshots, when allowed."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "generation run on an evaluation set"

    def __str__(self) -> str:
        return f"{self.label} on {self.eval_set}"


class EvaluationBatch(models.Model):
    """An annotation batch of kind evaluation: the candidate's and the baseline's responses to one set."""

    batch = models.OneToOneField("annotation.Batch", on_delete=models.PROTECT, related_name="evaluation")
    eval_set = models.ForeignKey(EvalSet, on_delete=models.PROTECT, related_name="evaluation_batches")
    candidate = models.ForeignKey(Sampled, on_delete=models.PROTECT, related_name="as_candidate")
    baseline = models.ForeignKey(Sampled, on_delete=models.PROTECT, related_name="as_baseline")
    gate_policy = models.ForeignKey(
        "evaluation.GatePolicy",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="evaluation_batches",
        help_text="The project's gate policy when the batch was made: the one its candidate is judged by.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "evaluation batches"
        constraints = [
            models.CheckConstraint(condition=~Q(candidate=models.F("baseline")), name="evalbatch_two_different_runs")
        ]

    def __str__(self) -> str:
        return f"evaluation {self.batch.name}"


class EvaluationItem(models.Model):
    """Which side of an item holds the candidate, and both responses' lengths in tokens (the length control)."""

    item = models.OneToOneField("annotation.Item", on_delete=models.CASCADE, related_name="evaluation")
    evaluation_batch = models.ForeignKey(EvaluationBatch, on_delete=models.CASCADE, related_name="items")
    prompt = models.ForeignKey(EvalPrompt, on_delete=models.PROTECT, related_name="+")
    candidate_is_a = models.BooleanField()
    candidate_tokens = models.PositiveIntegerField()
    baseline_tokens = models.PositiveIntegerField()

    class Meta:
        ordering = ["evaluation_batch", "id"]

    def __str__(self) -> str:
        return f"evaluation item {self.item_id} ({'A' if self.candidate_is_a else 'B'} is the candidate)"


class EvaluationSettings(models.Model):
    """One project's thresholds for the flags on the Checkpoints page (defaults when the row is absent)."""

    project = models.OneToOneField("annotation.Project", on_delete=models.CASCADE, related_name="evaluation_settings")
    diminishing_returns = models.FloatField(
        default=0.03, help_text="A checkpoint whose win-rate gain over the one before is under this is flagged."
    )
    reward_length_spearman = models.FloatField(
        default=0.5, help_text="Reward-length Spearman correlation of a run's generations above which it is flagged."
    )
    length_control_gap = models.FloatField(
        default=0.10, help_text="Flag when the length-controlled win rate is this far under the raw one."
    )
    bootstrap_resamples = models.PositiveIntegerField(default=1000)

    class Meta:
        verbose_name_plural = "evaluation settings"

    def __str__(self) -> str:
        return f"evaluation settings of {self.project}"


class LeaderboardSnapshot(models.Model):
    """A project's checkpoint leaderboard as computed at one moment (evaluation.services.leaderboards), with the
    change key of the data it was computed from: the Checkpoints page and the leaderboard API read the latest one
    instead of computing. Never edited: a refresh adds a newer row and prunes the oldest."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="leaderboard_snapshots")
    computed_at = models.DateTimeField()
    key = models.CharField(
        max_length=1000, help_text="evaluation.selectors_results.leaderboard_state's key when it was computed."
    )
    seconds = models.FloatField(help_text="How long the computation took.")
    data = models.JSONField(help_text="The leaderboard, as the API answers it.")

    class Meta:
        ordering = ["-computed_at", "-pk"]
        indexes = [models.Index(fields=["project", "-computed_at"], name="leaderboard_latest_per_project")]

    def __str__(self) -> str:
        return f"leaderboard of {self.project} at {self.computed_at:%Y-%m-%d %H:%M:%S}"


class GatePolicy(models.Model):
    """The quality bar a candidate must clear to be released, written before the evaluation it judges. Never edited:
    a change is a new version, and an evaluation batch keeps the version that was current when it was made.
    An empty threshold is a criterion the policy does not check."""

    project = models.ForeignKey("annotation.Project", on_delete=models.PROTECT, related_name="gate_policies")
    version = models.PositiveIntegerField()
    min_win_rate_lower = models.FloatField(
        null=True, blank=True, help_text="Lowest allowed lower bound of the win rate against the baseline (95 %)."
    )
    max_red_team_failure = models.FloatField(null=True, blank=True, help_text="Highest red-team failure rate.")
    min_stratum_win_rate = models.FloatField(null=True, blank=True, help_text="Lowest win rate in any stratum.")
    min_judgments = models.PositiveIntegerField(null=True, blank=True, help_text="Fewest evaluation judgments.")
    max_reward_length_spearman = models.FloatField(
        null=True, blank=True, help_text="Highest reward-length Spearman correlation of the candidate's generations."
    )
    blocking_flags = models.JSONField(
        default=list, blank=True, help_text='Flag codes that fail the gate: ["reward_hacking", "stratum_regression"].'
    )
    note = models.TextField(blank=True, help_text="Why this bar.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-version"]
        verbose_name_plural = "gate policies"
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="gatepolicy_version_unique")]

    def __str__(self) -> str:
        return f"{self.project} gate policy v{self.version}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Gate policies are immutable: write a new version instead.")
        super().save(*args, **kwargs)


class GateDecision(models.Model):
    """A reviewer's approve or reject of a candidate checkpoint on one evaluation batch, with each criterion of the
    batch's pinned policy as it stood at that moment (`checks`: [{"criterion", "label", "value", "threshold",
    "passed", "evidence"}])."""

    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    project = models.ForeignKey("annotation.Project", on_delete=models.PROTECT, related_name="gate_decisions")
    evaluation_batch = models.ForeignKey(EvaluationBatch, on_delete=models.PROTECT, related_name="decisions")
    checkpoint = models.ForeignKey("trainer.Checkpoint", on_delete=models.PROTECT, related_name="gate_decisions")
    policy = models.ForeignKey(GatePolicy, on_delete=models.PROTECT, related_name="decisions")
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    note = models.TextField(help_text="The reviewer's written reasons.")
    checks = models.JSONField(default=list)
    override = models.BooleanField(default=False, help_text="Approved although a criterion failed.")
    override_reason = models.TextField(blank=True)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="gate_decisions")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_verdict_display()} checkpoint {self.checkpoint_id} by {self.reviewer}"


class Release(models.Model):
    """A checkpoint released for deployment on an approving decision. At most one current release per project:
    releasing another supersedes it. The hand-off package is written beside it."""

    project = models.ForeignKey("annotation.Project", on_delete=models.PROTECT, related_name="releases")
    checkpoint = models.ForeignKey("trainer.Checkpoint", on_delete=models.PROTECT, related_name="releases")
    decision = models.OneToOneField(GateDecision, on_delete=models.PROTECT, related_name="release")
    released_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    released_at = models.DateTimeField(auto_now_add=True)
    superseded_at = models.DateTimeField(null=True, blank=True)
    override = models.BooleanField(default=False, help_text="Released over a failed criterion (shown in red).")
    package_path = models.CharField(max_length=500, blank=True, help_text="The hand-off package, under ARTIFACTS_DIR.")
    package_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-released_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=Q(superseded_at__isnull=True), name="release_one_current_per_project"
            )
        ]

    def __str__(self) -> str:
        return f"release of checkpoint {self.checkpoint_id} in {self.project}"


class AuditEvent(models.Model):
    """One gate or release event: who, when, what, the policy version and the figures at that moment. Append-only:
    no service, admin or API updates or deletes a row, and the database refuses it (evaluation/migrations)."""

    project = models.ForeignKey("annotation.Project", on_delete=models.PROTECT, related_name="audit_events")
    kind = models.CharField(max_length=40, help_text="policy_created, decision, release, release_refused, superseded")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)
    policy_version = models.PositiveIntegerField(null=True, blank=True)
    checkpoint = models.ForeignKey(
        "trainer.Checkpoint", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    payload = models.JSONField(default=dict, help_text="The figures and words of the event as they were then.")

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["project", "-at"], name="audit_project_recent")]

    def __str__(self) -> str:
        return f"{self.kind} in {self.project} at {self.at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("The audit log is append-only.")
