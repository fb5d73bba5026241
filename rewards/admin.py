"""Admin for rewards: snapshots are read-only records; flag rules are what a lead edits."""

from django.contrib import admin

from rewards.models import AgreementSnapshot, ProjectFlagRules


@admin.register(AgreementSnapshot)
class AgreementSnapshotAdmin(admin.ModelAdmin):
    list_display = ["batch", "computed_at", "judgment_count"]
    list_filter = ["batch__project"]
    list_select_related = ["batch__project"]
    readonly_fields = ["batch", "computed_at", "judgment_count", "report"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ProjectFlagRules)
class ProjectFlagRulesAdmin(admin.ModelAdmin):
    list_display = ["project", "updated_at"]
