"""Admin for per-project run limits (trainer.models.ProjectRunLimits): superusers only, since a limit bounds what a
project's ML engineers may spend of the GPU workers, which is not theirs to raise."""

from django.contrib import admin
from django.http import HttpRequest

from trainer.models import ProjectRunLimits


@admin.register(ProjectRunLimits)
class ProjectRunLimitsAdmin(admin.ModelAdmin):
    list_display = [
        "project",
        "time_limit_seconds",
        "max_steps",
        "epochs",
        "max_length",
        "response_length",
        "updated_at",
    ]
    list_select_related = ["project"]

    def _superuser(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._superuser(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._superuser(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._superuser(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._superuser(request)
