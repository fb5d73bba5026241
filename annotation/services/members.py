"""Project membership and the Django groups that mirror roles."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from annotation.models import Membership, Project, Role
from annotation.roles import STAFF_ROLES


class MemberError(ValueError):
    pass


@transaction.atomic
def member_add(*, project: Project, username: str, role: str) -> tuple[Membership, bool]:
    """Adds a user to a project with a role (or changes their role); returns (membership, created)."""
    if role not in Role.values:
        raise MemberError(f"Unknown role {role!r}: choose one of {', '.join(Role.values)}.")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise MemberError(f"No user named {username!r}.")
    membership, created = Membership.objects.select_for_update().get_or_create(
        project=project, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    if role in STAFF_ROLES and not user.is_staff:  # leads and ML engineers work in the admin site (annotation.roles)
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return membership, created
