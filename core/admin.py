"""The Django admin, scoped per project through core.authz: the admin site, a ModelAdmin base and an action
decorator that every app's admin uses.

A model admin names the path from its model to the project and the action (core.authz.Action) each kind of access
needs. Rows, foreign-key choices, object pages, add/change/delete and actions are then limited to the projects in
which the user's role allows that action; Django's global model permissions are not consulted, because they cannot
say "in which project". Superusers stay unrestricted. Admins of models that belong to no project (users, groups,
tokens, lockouts) keep Django's permissions, which the role groups never hold: superusers only.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from core.authz import Action, may, may_anywhere, projects_where, roles_allowed
from core.models import OutboxMessage


class TandemAdminSite(admin.AdminSite):
    site_header = "Tandem administration"
    site_title = "Tandem admin"

    def has_permission(self, request: HttpRequest) -> bool:
        """Staff flag and a staff role held now (the roles that see projects in the admin): the flag is kept in step
        with roles by annotation's membership services, and this check makes a stale flag harmless."""
        user = request.user
        return user.is_active and user.is_staff and may_anywhere(user=user, action=Action.VIEW_PROJECT)


def _project_id(obj: Model, path: str) -> int | None:
    """The project id of `obj` by a Django lookup path ("pk", "project", "batch__project")."""
    if path == "pk":
        return obj.pk
    *hops, last = path.split("__")
    for hop in hops:
        obj = getattr(obj, hop, None)
        if obj is None:
            return None
    return getattr(obj, f"{last}_id", None)


# For add/change/delete on records that only services write (judgments, snapshots, runs): nobody, superusers too.
NOBODY = "nobody"


class ProjectFilter(admin.SimpleListFilter):
    """Filter by project, listing only the projects the user may see in this admin (Django's own filter on a
    foreign key lists every project on the instance)."""

    title = "project"
    parameter_name = "project"

    def lookups(self, request, model_admin):
        projects = projects_where(user=request.user, action=model_admin.view_action).order_by("name")
        return [(str(pk), name) for pk, name in projects.values_list("pk", "name")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit() or len(value) > 18:
            return queryset.none()
        return queryset.filter(**{self.model_admin_path: int(value)})


class ProjectScopedMixin:
    """Row-level permissions for an admin (ModelAdmin or inline) whose model belongs to a project."""

    project_path: str = "project"  # lookup from the model to its Project; "pk" for Project itself
    view_action: Action = Action.VIEW_PROJECT
    change_action: Action | str | None = None  # None: nobody but superusers; NOBODY: nobody at all
    add_action: Action | str | None = None
    delete_action: Action | str | None = None

    def _can(self, request: HttpRequest, action: Action | str | None, obj: Model | None = None) -> bool:
        user = request.user
        if not (user.is_active and user.is_staff) or action == NOBODY:
            return False
        if user.is_superuser:
            return True
        if action is None:
            return False
        if obj is None:
            return may_anywhere(user=user, action=action)
        project_id = _project_id(obj, self.project_path)
        return project_id is not None and may(user=user, action=action, project=project_id)

    def scope(self, request: HttpRequest, queryset: QuerySet, action: Action) -> QuerySet:
        """`queryset` limited to the projects where the user may do `action`."""
        if request.user.is_superuser:
            return queryset
        projects = projects_where(user=request.user, action=action)
        return queryset.filter(**{f"{self.project_path}__in": projects})

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope(request, super().get_queryset(request), self.view_action)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._can(request, self.view_action)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._can(request, self.view_action, obj) or self._can(request, self.change_action, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._can(request, self.change_action, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._can(request, self.delete_action, obj)

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        """Choices of a project, or of a project's batches, criteria versions, runs…, are those of the projects
        where the user may add or change this model."""
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is None or request.user.is_superuser or not hasattr(field, "queryset"):
            return field
        action = next(a for a in (self.add_action, self.change_action, self.view_action) if a and a != NOBODY)
        projects = projects_where(user=request.user, action=action)
        related = db_field.related_model
        if related._meta.label == "annotation.Project":
            field.queryset = field.queryset.filter(pk__in=projects)
        elif any(f.name == "project" for f in related._meta.get_fields()):
            field.queryset = field.queryset.filter(project__in=projects)
        return field


class ProjectScopedAdmin(ProjectScopedMixin, admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._can(request, self.add_action)

    def get_list_filter(self, request: HttpRequest):
        if self.project_path == "pk":
            return super().get_list_filter(request)
        scoped = type("ScopedProjectFilter", (ProjectFilter,), {"model_admin_path": self.project_path})
        return [scoped, *super().get_list_filter(request)]

    def get_actions(self, request: HttpRequest):
        """Only actions that say which project action they need (project_action), and only where the user holds
        it in some project; delete_selected follows has_delete_permission per object as Django does."""
        actions = super().get_actions(request)
        if request.user.is_superuser:
            return actions
        kept = {}
        for name, (func, action_name, description) in actions.items():
            needed = getattr(func, "authz_action", None)
            if name == "delete_selected" or (needed is not None and self._can(request, needed)):
                kept[name] = (func, action_name, description)
        return kept


class ProjectScopedInline(ProjectScopedMixin):
    """For inlines: `obj` in the permission methods is the parent object (the project)."""

    def _can_parent(self, request: HttpRequest, action: Action | str | None, obj: Model | None) -> bool:
        if action == NOBODY:
            return False
        if request.user.is_superuser:
            return True
        if obj is None or action is None:
            return False
        return may(user=request.user, action=action, project=_project_id(obj, "pk"))

    def has_view_permission(self, request, obj=None) -> bool:
        return self._can_parent(request, self.view_action, obj) or self._can_parent(request, self.change_action, obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return self._can_parent(request, self.add_action, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._can_parent(request, self.change_action, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._can_parent(request, self.delete_action, obj)


def project_action(*, action: Action, description: str) -> Callable:
    """An admin action that needs `action` in the project of every selected row. A selection reaching into a
    project where the user lacks it is refused whole, with a message, and nothing is done."""

    def decorate(func: Callable) -> Callable:
        @wraps(func)
        def wrapper(modeladmin, request, queryset):
            allowed = modeladmin.scope(request, queryset, action)
            if allowed.count() != queryset.count():
                roles = " or ".join(sorted(roles_allowed(action)))
                modeladmin.message_user(
                    request,
                    f"Refused: some selected rows belong to a project where you are not a {roles}. Nothing was done.",
                    messages.ERROR,
                )
                return None
            return func(modeladmin, request, queryset)

        wrapper.authz_action = action
        return admin.action(description=description)(wrapper)

    return decorate


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """The outbox for operators: superusers only (Django's model permissions, which no role group holds), and
    read-only: rows are written by core.outbox and drained by workers and beat."""

    list_display = ["id", "task", "key", "status", "attempts", "next_attempt_at", "created_at", "sent_at"]
    list_filter = ["status", "task"]
    search_fields = ["key", "task", "last_error"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in OutboxMessage._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
