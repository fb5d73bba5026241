"""Reads of the annotation domain."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotation.models import Membership, Project, Role


def project_role_for(*, project: Project, user: AbstractBaseUser) -> str | None:
    """The user's role on the project; superusers count as leads."""
    if not user.is_authenticated:
        return None
    role = Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    if role is None and user.is_superuser:
        return Role.LEAD
    return role


def project_list_for(*, user: AbstractBaseUser) -> QuerySet[Project]:
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()
