"""Who may do what on a project: roles come from Membership, superusers act as leads."""

from django.shortcuts import get_object_or_404
from rest_framework.exceptions import PermissionDenied

from annotation.models import Project, Role
from annotation.selectors import project_role_for


def project_for_role(*, request, project_id: int, roles: tuple[str, ...]) -> Project:
    """The project, if the requesting user holds one of `roles` on it; 404 if it doesn't exist, else 403."""
    project = get_object_or_404(Project, pk=project_id)
    role = project_role_for(project=project, user=request.user)
    if role not in roles:
        allowed = " or ".join(Role(r).label.lower() for r in roles)
        raise PermissionDenied(f"Only a project {allowed} can do this.")
    return project
