"""Rewards' tables: stored agreement snapshots (what pages and the API read) and each project's flag thresholds."""

from django.core.exceptions import ValidationError
from django.db import models

from annotation.models import Batch, Project
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
