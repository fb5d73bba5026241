"""Project membership, and the Django groups and staff flag that mirror it.

Roles are the single source: every change of a membership (add, change of role, removal) recomputes the user's
role groups and `is_staff` in the same transaction, so admin access never outlives the role that gave it.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction

from annotation.models import Membership, Project, Role
from core.authz import STAFF_ROLES


class MemberError(ValueError):
    pass


def _user(username: str) -> AbstractBaseUser:
    user = get_user_model().objects.select_for_update().filter(username=username).first()
    if user is None:
        raise MemberError(f"No user named {username!r}.")
    return user


def user_roles_sync(*, user: AbstractBaseUser) -> None:
    """The user's role groups are the roles they hold in some project; they are staff while one of those roles
    works in the admin (superusers keep the admin whatever they hold)."""
    held = set(Membership.objects.filter(user=user).values_list("role", flat=True).distinct())
    for role in Role.values:
        group, _ = Group.objects.get_or_create(name=role)
        if role in held:
            user.groups.add(group)
        else:
            user.groups.remove(group)
    staff = user.is_superuser or bool(held & STAFF_ROLES)
    if user.is_staff != staff:
        user.is_staff = staff
        user.save(update_fields=["is_staff"])


@transaction.atomic
def member_add(*, project: Project, username: str, role: str) -> tuple[Membership, bool]:
    """Adds a user to a project with a role (or changes their role); returns (membership, created)."""
    if role not in Role.values:
        raise MemberError(f"Unknown role {role!r}: choose one of {', '.join(Role.values)}.")
    user = _user(username)
    membership, created = Membership.objects.select_for_update().get_or_create(
        project=project, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    user_roles_sync(user=user)
    return membership, created


@transaction.atomic
def member_remove(*, project: Project, username: str) -> bool:
    """Removes the user's membership of the project; True if there was one. Their groups and staff flag follow."""
    user = _user(username)
    deleted, _ = Membership.objects.filter(project=project, user=user).delete()
    user_roles_sync(user=user)
    return bool(deleted)
