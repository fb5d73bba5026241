"""Rewards' tables: stored agreement snapshots (what pages and the API read), each project's flag thresholds,
and dataset snapshots (exported preference pairs)."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from annotation.models import Batch, Project
from rewards.errors import SnapshotImmutable
from rewards.metrics.flags import FlagRules


def default_flag_rules() -> dict:
    return FlagRules().to_dict()


def validate_flag_rules(value: object) -> None:
    if not isinstance(value, dict):
        raise ValidationError("Flag rules must be a JSON object of rule name to value.")
    try:
        FlagRules.from_dict(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from exc


class AgreementSnapshot(models.Model):
    """One batch's metrics at one moment. Never edited: a refresh adds a newer snapshot.

    report is BatchReport.to_dict() with annotator indices replaced by user ids (plus "username" on every
    per-annotator entry), and "flags": the project's rules applied to it.
    """

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="agreement_snapshots")
    computed_at = models.DateTimeField(db_index=True)
    judgment_count = models.PositiveIntegerField()
    report = models.JSONField()

    class Meta:
        ordering = ["-computed_at", "-pk"]
        indexes = [models.Index(fields=["batch", "-computed_at"], name="snapshot_latest_per_batch")]

    def __str__(self) -> str:
        return f"{self.batch} at {self.computed_at:%Y-%m-%d %H:%M:%S}"


class SplitItem(models.Model):
    """An item whose votes split ("split" or "low_agreement"), as one agreement snapshot found it: the lead's
    split-vote list, stored with the snapshot so pages and the API read it instead of recounting votes."""

    snapshot = models.ForeignKey(AgreementSnapshot, on_delete=models.CASCADE, related_name="split_items")
    item = models.ForeignKey("annotation.Item", on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=20)
    votes = models.JSONField()
    agreement = models.FloatField()
    margin = models.FloatField()

    class Meta:
        ordering = ["snapshot", "item"]
        constraints = [models.UniqueConstraint(fields=["snapshot", "item"], name="split_item_once_per_snapshot")]

    def __str__(self) -> str:
        return f"item {self.item_id} ({self.reason}) in {self.snapshot}"


class ProjectFlagRules(models.Model):
    """A project's flag thresholds; a project without a row uses FlagRules' defaults."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="flag_rules")
    rules = models.JSONField(
        default=default_flag_rules,
        validators=[validate_flag_rules],
        help_text="Names and values as in rewards.metrics.FlagRules; names left out keep their default.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "project flag rules"
        verbose_name_plural = "project flag rules"

    def __str__(self) -> str:
        return f"flag rules of {self.project}"


class DatasetSnapshot(models.Model):
    """Preference pairs exported from closed batches, as files under ARTIFACTS_DIR/<directory>/. Never edited.

    Made only by rewards.services.datasets.dataset_create, which writes the files first and stores this row in
    the same step; sha256 holds each file's digest ({"train", "validation", "excluded", "manifest"}) and
    rewards.services.datasets.dataset_verify checks them before anything reads the files.
    """

    class Weighting(models.TextChoices):
        VOTE = "vote", "One vote each"
        DAWID_SKENE = "dawid_skene", "Votes weighted by Dawid-Skene annotator reliability"

    class PromptFormat(models.TextChoices):
        STANDARD = "standard", "Standard (prompt text)"
        CONVERSATIONAL = "conversational", "Conversational (messages)"

    class Kind(models.TextChoices):
        PREFERENCE = "preference", "Preference pairs"
        # Accepted demonstrations (and labelled demonstration sources) in TRL's conversational format.
        SFT = "sft", "Demonstrations for supervised fine-tuning"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="dataset_snapshots")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PREFERENCE)
    # Human-judged (or demonstration) batches, and labelled sources (Batch.Kind.LABELLED) alike.
    batches = models.ManyToManyField(Batch, related_name="dataset_snapshots")
    sources = models.JSONField(
        default=list,
        blank=True,
        help_text="Labelled sources taken: [{name, batch_id, format, files: [{filename, sha256}]}].",
    )
    criteria_versions = models.JSONField(default=list, help_text="Criteria version numbers of the batches.")
    weighting = models.CharField(max_length=20, choices=Weighting.choices, default=Weighting.VOTE)
    validation_fraction = models.FloatField(default=0.1)
    seed = models.BigIntegerField(default=0)
    prompt_format = models.CharField(max_length=20, choices=PromptFormat.choices)
    train_count = models.PositiveIntegerField()
    validation_count = models.PositiveIntegerField()
    excluded_count = models.PositiveIntegerField()
    excluded_reasons = models.JSONField(default=dict, help_text="Excluded items per reason.")
    sha256 = models.JSONField(default=dict, help_text="File name (train, validation, excluded, manifest) -> sha256.")
    directory = models.CharField(max_length=200, help_text="Relative to ARTIFACTS_DIR.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"dataset {self.pk} of {self.project}"

    def save(self, *args, **kwargs):
        # Runs, lineage and downloads trust a snapshot's files and figures, so the row is guarded as well as the
        # service and the admin: a different dataset is a new snapshot.
        if not self._state.adding:
            raise SnapshotImmutable("Dataset snapshots are immutable: make a new snapshot instead.")
        super().save(*args, **kwargs)

    @property
    def rule(self) -> str:
        """The aggregation rule (the contract's name for the weighting)."""
        return self.weighting

    @property
    def counts(self) -> dict[str, int]:
        return {"train": self.train_count, "validation": self.validation_count, "excluded": self.excluded_count}
