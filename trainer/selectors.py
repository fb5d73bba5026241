"""Reads for runs: who may start or see them, the runs a user sees, a run's metrics for the charts, and what a list
shows of each run (its key evaluation figure, how long it ran, its flags)."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Max, Min, QuerySet
from django.utils import timezone

from annotation.models import Project
from core.authz import Action, may, projects_where
from trainer.flags import Flag, RewardModelRules
from trainer.flags import run_flags as flags_of
from trainer.models import Checkpoint, Generation, Kind, RunMetric, Status, TrainingRun, WorkerCapability


def run_can_start(*, user: AbstractBaseUser, project: Project | int) -> bool:
    """Starting and cancelling runs: the project's ML engineers, and superusers (core.authz)."""
    return may(user=user, action=Action.START_RUNS, project=project)


def run_can_view(*, user: AbstractBaseUser, project: Project | int) -> bool:
    """The run pages and the runs API: the project's ML engineers and leads, and superusers (core.authz)."""
    return may(user=user, action=Action.VIEW_RUNS, project=project)


def runs_visible_to(*, user: AbstractBaseUser) -> QuerySet[TrainingRun]:
    runs = TrainingRun.objects.select_related("project", "snapshot", "reward_model", "created_by")
    if user.is_superuser:
        return runs
    return runs.filter(project__in=projects_where(user=user, action=Action.VIEW_RUNS))


def run_list(
    *, user: AbstractBaseUser, project_id: int | None = None, status: str = "", kind: str = ""
) -> QuerySet[TrainingRun]:
    runs = runs_visible_to(user=user)
    if project_id is not None:
        runs = runs.filter(project_id=project_id)
    if status:
        runs = runs.filter(status=status)
    if kind:
        runs = runs.filter(kind=kind)
    return runs


# The one evaluation figure a list shows per kind: the key in run.evaluation and what to call it.
KEY_METRIC = {
    Kind.REWARD_MODEL: ("accuracy", "accuracy"),
    Kind.DPO: ("reward_accuracy", "reward accuracy"),
    Kind.PPO: ("reward_gain", "reward gain"),
    Kind.RLOO: ("reward_gain", "reward gain"),
    Kind.GENERATE: ("mean_length", "mean length"),
    Kind.SFT: ("validation_perplexity", "validation perplexity"),
}


def run_evaluation_summary(*, run: TrainingRun) -> dict | None:
    """{"name", "label", "value"} of the run's key evaluation figure, or None before it has one."""
    name, label = KEY_METRIC.get(run.kind, (None, None))
    value = (run.evaluation or {}).get(name) if name else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return {"name": name, "label": label, "value": float(value)}


def run_duration_seconds(*, run: TrainingRun, now: datetime | None = None) -> float | None:
    """How long the run has been running: from its start to its end, or to now while it runs; None if it never
    started."""
    if run.started_at is None:
        return None
    end = run.finished_at or (now or timezone.now() if run.status == Status.RUNNING else None)
    return None if end is None else max(0.0, (end - run.started_at).total_seconds())


def reward_model_rules() -> RewardModelRules:
    return RewardModelRules(
        margin=settings.TANDEM_RM_LENGTH_MARGIN,
        confidence=settings.TANDEM_RM_LENGTH_CONFIDENCE,
        max_length_correlation=settings.TANDEM_RM_MAX_LENGTH_CORRELATION,
    )


def run_flags(*, run: TrainingRun) -> list[Flag]:
    """What the run's evaluation warns about (trainer.flags), with the server's thresholds."""
    return flags_of(
        kind=run.kind, status=run.status, evaluation=run.evaluation or {}, reward_model_rules=reward_model_rules()
    )


def reward_model_runs_for(*, project: Project | int) -> QuerySet[TrainingRun]:
    """Runs a PPO or RLOO run of this project may use as its reward model."""
    project_id = project if isinstance(project, int) else project.pk
    return TrainingRun.objects.filter(project_id=project_id, kind=Kind.REWARD_MODEL, status=Status.SUCCEEDED)


def base_model_runs_for(*, project: Project | int) -> QuerySet[TrainingRun]:
    """Runs a run of this project may start from (base_model run:ID, also the reference of DPO, PPO and RLOO): its
    succeeded runs whose final checkpoint is a causal LM (SFT, DPO, PPO, RLOO), newest first."""
    from trainer.models import POLICY_KINDS

    project_id = project if isinstance(project, int) else project.pk
    return TrainingRun.objects.filter(
        project_id=project_id, kind__in=sorted(POLICY_KINDS), status=Status.SUCCEEDED
    ).order_by("-finished_at", "-pk")


@dataclass(frozen=True)
class MetricPage:
    """Points after a step, by metric name, for a chart to append: series[name] = [[step, value], ...]."""

    series: dict[str, list[list[float]]]
    last_step: int | None  # the highest step in this page; ask again with after=last_step
    more: bool  # the page was cut at `limit` points: ask again at once


def run_metrics_after(*, run: TrainingRun, after: int | None = None, limit: int = 5000) -> MetricPage:
    """The run's metrics logged at steps > after, whole steps only, at most about `limit` points."""
    rows = RunMetric.objects.filter(run=run).order_by("step", "name")
    if after is not None:
        rows = rows.filter(step__gt=after)
    points = list(rows.values_list("step", "name", "value")[: limit + 1])
    more = len(points) > limit
    if more:
        # Never hand out half a step: the next page starts after last_step.
        cut_step = points[limit][0]
        points = [p for p in points[:limit] if p[0] < cut_step]
        if not points:  # one step with more than `limit` values: give the whole step
            points = list(rows.filter(step=cut_step).values_list("step", "name", "value"))
    series: dict[str, list[list[float]]] = {}
    for step, name, value in points:
        series.setdefault(name, []).append([step, value if math.isfinite(value) else None])
    return MetricPage(series=series, last_step=points[-1][0] if points else after, more=more)


def run_metrics_summary(*, run: TrainingRun) -> list[dict]:
    """Per metric name: how many points, first/last step, min, max and the last value."""
    summary = {
        row["name"]: row
        for row in RunMetric.objects.filter(run=run)
        .values("name")
        .annotate(first_step=Min("step"), last_step=Max("step"), minimum=Min("value"), maximum=Max("value"))
        .order_by("name")
    }
    for name, row in summary.items():
        row["last"] = (
            RunMetric.objects.filter(run=run, name=name)
            .order_by("-step", "-pk")
            .values_list("value", flat=True)
            .first()
        )
    return list(summary.values())


def id_from_query(value: str | None) -> int | None:
    """A database id from a query-string value, or None when it is not one: ASCII digits within a bigint (a page's
    ?project=, ?like=: a bad value means "no filter", never an overflow in the database driver)."""
    if not value or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if 0 < number < 2**63 else None


def run_checkpoints(*, run: TrainingRun) -> QuerySet[Checkpoint]:
    """A run's checkpoints by step, those whose files keep_checkpoints removed included (their rows stay)."""
    return Checkpoint.objects.filter(run=run).order_by("step", "pk")


def checkpoint_get(*, checkpoint_id: int) -> Checkpoint | None:
    return Checkpoint.objects.select_related("run").filter(pk=checkpoint_id).first()


def checkpoint_can_download_in(*, user: AbstractBaseUser, project: Project | int) -> bool:
    """Downloading a project's checkpoints: its ML engineers (the START_RUNS role), and superusers (core.authz)."""
    return may(user=user, action=CHECKPOINT_DOWNLOAD_ACTION, project=project)


# Who may download a checkpoint's files: the ML engineers, who start runs (leads see runs, not weights).
CHECKPOINT_DOWNLOAD_ACTION = Action.START_RUNS


# --- Reads the evaluation app makes of runs, checkpoints and generations ------------------------------------------


def checkpoint_in_project(*, checkpoint_id: int, project_id: int) -> Checkpoint | None:
    return Checkpoint.objects.select_related("run").filter(pk=checkpoint_id, run__project_id=project_id).first()


def checkpoint_run_ids(*, checkpoint_ids: set[int]) -> set[int]:
    return set(Checkpoint.objects.filter(pk__in=checkpoint_ids).values_list("run_id", flat=True))


def run_in_project(*, run_id: int, project_id: int) -> TrainingRun | None:
    return TrainingRun.objects.filter(pk=run_id, project_id=project_id).first()


def run_final_checkpoint(*, run: TrainingRun) -> Checkpoint | None:
    return Checkpoint.objects.select_related("run").filter(run=run, final=True).order_by("-step").first()


def runs_by_id(*, run_ids: set[int]) -> dict[int, TrainingRun]:
    return {run.pk: run for run in TrainingRun.objects.select_related("snapshot", "resume_from").filter(pk__in=run_ids)}


def first_responses(*, run: TrainingRun) -> dict[str, tuple[str, int]]:
    """prompt id -> (text, token count) of a generate run's first sample of each prompt."""
    rows = Generation.objects.filter(run=run, sample=0).values_list("prompt_id", "text", "token_count")
    return {prompt_id: (text, tokens) for prompt_id, text, tokens in rows.iterator(chunk_size=2000)}


def generations_by_prompt(*, run_ids: list[int], prompt_ids: list[str]) -> dict[tuple[int, str], list[Generation]]:
    """(run id, prompt id) -> that run's responses to the prompt, in sample order."""
    found: dict[tuple[int, str], list[Generation]] = {}
    rows = Generation.objects.filter(run_id__in=run_ids, prompt_id__in=prompt_ids).order_by("sample")
    for generation in rows:
        found.setdefault((generation.run_id, generation.prompt_id), []).append(generation)
    return found


def identity_leak_counts(*, run_ids: list[int]) -> dict[int, int]:
    """run id -> how many of its first samples match the project's identity-leak patterns."""
    rows = (
        Generation.objects.filter(run_id__in=run_ids, sample=0, identity_leak=True)
        .values("run_id")
        .annotate(n=Count("pk"))
        .values_list("run_id", "n")
    )
    return dict(rows)


def workers_live(*, now: datetime | None = None) -> list[WorkerCapability]:
    """The workers serving training queues seen within TANDEM_WORKER_LIVE_INTERVALS refreshes, not stopped
    (trainer.models.WorkerCapability)."""
    now = now or timezone.now()
    window = timedelta(seconds=settings.TANDEM_WORKER_SEEN_SECONDS * settings.TANDEM_WORKER_LIVE_INTERVALS)
    return list(WorkerCapability.objects.filter(stopped_at__isnull=True, last_seen_at__gte=now - window))
