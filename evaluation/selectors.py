"""Reads for evaluation sets and the generation runs made from them: who may do what with them, the sets and
prompts a user sees, and the trainer rows (runs, checkpoints) a generation run is resolved against.

Results (win rates, leaderboard, flags) are read in evaluation/selectors_results.py.
"""

from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotation.models import Project
from core.authz import Action, may, projects_where
from evaluation.models import EvalPrompt, EvalSet, Sampled

# Who may do what with evaluation sets (core.authz): leads and ML engineers import and read them; starting a
# generation run is starting a run (ML engineers). Annotators hold none of these.
EVAL_SET_IMPORT = Action.MANAGE_EVALUATION
EVAL_SET_VIEW = Action.VIEW_EVALUATION
GENERATION_START = Action.START_RUNS


def eval_set_can_import(*, user: AbstractBaseUser, project: Project | int) -> bool:
    return may(user=user, action=EVAL_SET_IMPORT, project=project)


def eval_set_can_view(*, user: AbstractBaseUser, project: Project | int) -> bool:
    return may(user=user, action=EVAL_SET_VIEW, project=project)


def generation_can_start(*, user: AbstractBaseUser, project: Project | int) -> bool:
    return may(user=user, action=GENERATION_START, project=project)


def eval_sets_visible_to(*, user: AbstractBaseUser) -> QuerySet[EvalSet]:
    sets = EvalSet.objects.select_related("project", "created_by")
    if user.is_superuser:
        return sets
    return sets.filter(project__in=projects_where(user=user, action=EVAL_SET_VIEW))


def eval_set_list(*, project: Project) -> QuerySet[EvalSet]:
    """The project's sets, by name, newest version first."""
    return EvalSet.objects.filter(project=project).select_related("project", "created_by").order_by("name", "-version")


def eval_set_get(*, eval_set_id: int) -> EvalSet | None:
    return EvalSet.objects.select_related("project", "created_by").filter(pk=eval_set_id).first()


def eval_set_prompts(*, eval_set: EvalSet) -> QuerySet[EvalPrompt]:
    """The set's prompts in file order."""
    return EvalPrompt.objects.filter(eval_set=eval_set).order_by("pk")


def eval_set_latest_version(*, project: Project | int, name: str) -> int:
    project_id = project if isinstance(project, int) else project.pk
    latest = (
        EvalSet.objects.filter(project_id=project_id, name=name).order_by("-version").values_list("version", flat=True)
    )
    return latest.first() or 0


def eval_set_file(*, eval_set: EvalSet) -> Path:
    """The normalised prompt file the generate runs read (not checked: see evaluation.services.eval_sets)."""
    return Path(settings.ARTIFACTS_DIR) / eval_set.path


def generation_runs_for(*, project: Project | int, eval_set: EvalSet | None = None) -> QuerySet[Sampled]:
    """The project's generation runs on its sets, newest first, with their run and set."""
    project_id = project if isinstance(project, int) else project.pk
    sampled = Sampled.objects.filter(eval_set__project_id=project_id)
    if eval_set is not None:
        sampled = sampled.filter(eval_set=eval_set)
    return sampled.select_related("run", "run__created_by", "eval_set").order_by("-created_at", "-pk")
