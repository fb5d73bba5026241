"""What the pages need to know about the user's projects. The rules themselves stay in annotation."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from annotation.models import Membership
from annotation.selectors import project_list_for, project_roles_for, projects_with_open_demonstrations
from annotation.services.sessions import ANNOTATING_ROLES
from core.authz import Action, role_may


@dataclass(frozen=True)
class ProjectCard:
    id: int
    name: str
    description: str
    role: str  # the membership's role label, "" when the user sees the project without being a member
    can_annotate: bool
    # The ML engineer's actions (and a lead's runs link), as core.authz allows them in this project.
    can_view_runs: bool = False
    can_start_runs: bool = False
    can_view_datasets: bool = False
    # An annotator's "Write demonstrations": the project has an open demonstration batch.
    can_write: bool = False


def project_cards_for(*, user: AbstractBaseUser) -> list[ProjectCard]:
    """The user's projects with their role, and whether the session API will let them annotate there."""
    if not user.is_authenticated:
        return []
    roles = project_roles_for(user=user)
    labels = dict(Membership._meta.get_field("role").choices)
    writing = projects_with_open_demonstrations(
        project_ids=[pk for pk, role in roles.items() if role in ANNOTATING_ROLES]
    )
    return [
        ProjectCard(
            id=project.pk,
            name=project.name,
            description=project.description,
            role=labels.get(roles.get(project.pk), ""),
            can_annotate=roles.get(project.pk) in ANNOTATING_ROLES,
            can_view_runs=user.is_superuser or role_may(roles.get(project.pk), Action.VIEW_RUNS),
            can_start_runs=user.is_superuser or role_may(roles.get(project.pk), Action.START_RUNS),
            can_view_datasets=user.is_superuser or role_may(roles.get(project.pk), Action.VIEW_DATASETS),
            can_write=project.pk in writing,
        )
        for project in project_list_for(user=user)
    ]
