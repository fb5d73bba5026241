"""The one authorization rule: which role may do what in a project, and the reads every door asks it through.

Roles belong to a project (a Membership row: one role per user and project). Every door — the API's views, the
pages, the downloads and each Django admin — asks `may`, `projects_where` or `project_for` here, so that a rule
changes in one place. Superusers may do everything except annotate, which needs a membership like anyone else's.

What a role may not do, it may not see either: an annotator of a project holds no action that shows items, votes,
gold answers or model names, whatever roles they hold in other projects, because each check is made against the
role held in *that* project.
"""

from enum import StrEnum

from django.apps import apps
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import Http404


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    LEAD = "lead", "Annotation lead"
    ML_ENGINEER = "ml_engineer", "ML engineer"
    REVIEWER = "reviewer", "Reviewer"  # QA or red-team lead: sees checkpoints and their evaluation, starts nothing


class Action(StrEnum):
    ANNOTATE = "annotate"  # take sessions and judge in the annotator loop
    VIEW_PROJECT = "view_project"  # the project's settings, criteria versions and batches
    CHANGE_PROJECT = "change_project"  # edit settings, criteria versions and flag rules
    MANAGE_MEMBERS = "manage_members"  # add, change and remove memberships
    IMPORT_ITEMS = "import_items"  # import files into batches, read the import records
    MANAGE_BATCHES = "manage_batches"  # add, rename, close batches
    VIEW_ITEMS = "view_items"  # items unblinded: model names, which side is A, gold answers
    VIEW_JUDGMENTS = "view_judgments"  # sessions, assignments and votes: who chose what
    VIEW_AGREEMENT = "view_agreement"  # the lead's dashboard, agreement snapshots, split items
    MAKE_DATASET = "make_dataset"  # dataset snapshots from closed batches
    VIEW_DATASETS = "view_datasets"  # dataset snapshots and their files
    VIEW_RUNS = "view_runs"  # training runs, their metrics, lineage and pages
    START_RUNS = "start_runs"  # start and cancel training runs (generate runs included)
    VIEW_EVALUATION = "view_evaluation"  # evaluation sets, generations side by side, results, the leaderboard
    MANAGE_EVALUATION = "manage_evaluation"  # import evaluation sets, make evaluation batches
    VIEW_RELEASES = "view_releases"  # gate pages, decisions, releases, the audit log, hand-off packages
    MANAGE_GATE = "manage_gate"  # write a new gate policy version
    DECIDE_GATE = "decide_gate"  # approve or reject a candidate, release it, override a failed criterion
    REVIEW_DEMONSTRATIONS = "review_demonstrations"  # the review queue: accept, edit, reject written demonstrations


# The matrix. docs/SECURITY.md prints it; tests/core/test_authorization_matrix.py holds every door to it.
ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.ANNOTATOR: frozenset({Action.ANNOTATE}),
    Role.LEAD: frozenset(
        {
            Action.ANNOTATE,
            Action.VIEW_PROJECT,
            Action.CHANGE_PROJECT,
            Action.MANAGE_MEMBERS,
            Action.IMPORT_ITEMS,
            Action.MANAGE_BATCHES,
            Action.VIEW_ITEMS,
            Action.VIEW_JUDGMENTS,
            Action.VIEW_AGREEMENT,
            Action.MAKE_DATASET,
            Action.VIEW_DATASETS,
            Action.VIEW_RUNS,
            Action.VIEW_EVALUATION,
            Action.MANAGE_EVALUATION,
            Action.VIEW_RELEASES,
            Action.MANAGE_GATE,
            Action.REVIEW_DEMONSTRATIONS,
        }
    ),
    Role.ML_ENGINEER: frozenset(
        {
            Action.VIEW_PROJECT,
            Action.VIEW_ITEMS,
            Action.MAKE_DATASET,
            Action.VIEW_DATASETS,
            Action.VIEW_RUNS,
            Action.START_RUNS,
            Action.VIEW_EVALUATION,
            Action.MANAGE_EVALUATION,
            Action.VIEW_RELEASES,
        }
    ),
    Role.REVIEWER: frozenset(
        {
            Action.VIEW_PROJECT,
            Action.VIEW_RUNS,
            Action.VIEW_EVALUATION,
            Action.VIEW_RELEASES,
            Action.MANAGE_GATE,
            Action.DECIDE_GATE,
        }
    ),
}


def role_may(role: str | None, action: Action) -> bool:
    return role is not None and action in ROLE_ACTIONS.get(role, frozenset())


def roles_allowed(action: Action) -> frozenset[str]:
    """The roles that may do `action`."""
    return frozenset(role for role, actions in ROLE_ACTIONS.items() if action in actions)


# Roles that work in the Django admin, the ones that see projects there: holding one in any project makes a user
# staff (annotation.services.members), and the admin site lets in only those (core.admin.TandemAdminSite).
STAFF_ROLES = roles_allowed(Action.VIEW_PROJECT)


def _memberships():
    # Roles are stored in annotation's Membership table; core reads it by name so that it imports no domain app.
    return apps.get_model("annotation", "Membership").objects


def _project_model():
    return apps.get_model("annotation", "Project")


def _pk(project) -> int:
    return project if isinstance(project, int) else project.pk


def role_of(*, user: AbstractBaseUser, project) -> str | None:
    """The user's role in the project from their membership (superusers included: no membership, no role)."""
    if not user.is_authenticated:
        return None
    return _memberships().filter(project_id=_pk(project), user_id=user.pk).values_list("role", flat=True).first()


def may(*, user: AbstractBaseUser, action: Action, project) -> bool:
    """May `user` do `action` in `project` (a Project or its id)?"""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser and action != Action.ANNOTATE:
        return True
    return role_may(role_of(user=user, project=project), action)


def projects_where(*, user: AbstractBaseUser, action: Action) -> QuerySet:
    """The projects in which `user` may do `action`."""
    projects = _project_model().objects
    if not user.is_authenticated or not user.is_active:
        return projects.none()
    if user.is_superuser and action != Action.ANNOTATE:
        return projects.all()
    roles = roles_allowed(action)
    project_ids = _memberships().filter(user_id=user.pk, role__in=roles).values("project_id")
    return projects.filter(pk__in=project_ids)


def may_anywhere(*, user: AbstractBaseUser, action: Action) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser and action != Action.ANNOTATE:
        return True
    return _memberships().filter(user_id=user.pk, role__in=roles_allowed(action)).exists()


def check(*, user: AbstractBaseUser, action: Action, project, what: str = "do this") -> None:
    """Raises unless `user` may do `action` in `project`: Http404 when the user has no role there at all (another
    project's objects look exactly like missing ones), PermissionDenied (403) naming the roles that may when they
    are a member. Django's exceptions, so that pages and DRF views (which translate them) share the rule."""
    if may(user=user, action=action, project=project):
        return
    role = role_of(user=user, project=project)
    if role is None:
        raise Http404("Not found.")
    allowed = " or ".join(sorted(Role(r).label.lower() for r in roles_allowed(action)))
    raise PermissionDenied(f"Only a project {allowed} can {what}.")


def project_for(*, user: AbstractBaseUser, action: Action, project_id: int, what: str = "do this"):
    """The project, when `user` may do `action` in it; 404 when it does not exist or the user has no role in it,
    403 when they are a member whose role does not allow it."""
    project = _project_model().objects.filter(pk=project_id).first()
    if project is None:
        raise Http404("Not found.")
    check(user=user, action=action, project=project, what=what)
    return project
