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
