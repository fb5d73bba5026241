"""What the pages need to know about the user's projects. The rules themselves stay in annotation."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from annotation.models import Membership
from annotation.selectors import project_list_for
from annotation.services.sessions import ANNOTATING_ROLES


@dataclass(frozen=True)
class ProjectCard:
    id: int
    name: str
    description: str
    role: str  # the membership's role label, "" when the user sees the project without being a member
    can_annotate: bool


def project_cards_for(*, user: AbstractBaseUser) -> list[ProjectCard]:
    """The user's projects with their role, and whether the session API will let them annotate there."""
    if not user.is_authenticated:
        return []
    roles = dict(Membership.objects.filter(user=user).values_list("project_id", "role"))
    labels = dict(Membership._meta.get_field("role").choices)
    return [
        ProjectCard(
            id=project.pk,
            name=project.name,
            description=project.description,
            role=labels.get(roles.get(project.pk), ""),
            can_annotate=roles.get(project.pk) in ANNOTATING_ROLES,
        )
        for project in project_list_for(user=user)
    ]
