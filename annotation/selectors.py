"""Reads of the annotation domain."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotation.models import Membership, Project


def project_roles_for(*, user: AbstractBaseUser) -> dict[int, str]:
    """The user's role in each project they are a member of (superusers hold no role without a membership:
    core.authz lets them do everything but annotate)."""
    if not user.is_authenticated:
        return {}
    return dict(Membership.objects.filter(user=user).values_list("project_id", "role"))


def project_list_for(*, user: AbstractBaseUser) -> QuerySet[Project]:
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()
