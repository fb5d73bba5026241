"""The admin of what annotators tell leads besides their votes: reports on items (and the withdrawal they can lead
to), judgments revised within the revise window, and the skip filter of the assignments' list."""

from django.contrib import admin, messages
from django.db.models import Count

from annotation.models import Item, ItemReport, JudgmentRevision
from annotation.services.annotator_actions import items_withdraw
from core.admin import NOBODY, ProjectScopedAdmin, project_action
from core.authz import Action


class SkippedFilter(admin.SimpleListFilter):
    title = "skipped"
    parameter_name = "skipped"

    def lookups(self, request, model_admin):
        return [("yes", "Skipped"), ("no", "Not skipped")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(skipped_at__isnull=self.value() == "no")
        return queryset


@admin.register(ItemReport)
class ItemReportAdmin(ProjectScopedAdmin):
    """Items annotators reported (broken, harmful, out of scope), for the leads, who may withdraw them: a withdrawn
    item is served to nobody any more and left out of dataset exports."""

    project_path = "item__project"
    view_action = Action.VIEW_ITEMS
    add_action = change_action = NOBODY  # written by the annotator API
    list_display = ["created_at", "item", "batch", "kind", "note", "annotator", "reports_of_item", "withdrawn"]
    list_filter = ["kind", ("item__withdrawn_at", admin.EmptyFieldListFilter)]
    search_fields = ["item__external_id", "annotator__username", "note"]
    list_select_related = ["item__batch", "annotator"]
    raw_id_fields = ["item", "assignment"]
    actions = ["withdraw_items"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_reports=Count("item__reports"))

    @admin.display(description="batch", ordering="item__batch__name")
    def batch(self, report: ItemReport) -> str:
        return report.item.batch.name

    @admin.display(description="reports of the item", ordering="_reports")
    def reports_of_item(self, report: ItemReport) -> int:
        return report._reports

    @admin.display(description="withdrawn", boolean=True)
    def withdrawn(self, report: ItemReport) -> bool:
        return report.item.withdrawn_at is not None

    @project_action(action=Action.MANAGE_BATCHES, description="Withdraw the reported items from their batch")
    def withdraw_items(self, request, queryset):
        withdrawn = items_withdraw(items=Item.objects.filter(pk__in=queryset.values("item_id")))
        self.message_user(
            request,
            f"Withdrew {withdrawn} item(s): served to nobody any more and left out of dataset exports.",
            messages.SUCCESS,
        )


@admin.register(JudgmentRevision)
class JudgmentRevisionAdmin(ProjectScopedAdmin):
    """Revisions annotators made within the revise window: what each judgment said before (stored A/B)."""

    project_path = "judgment__batch__project"
    view_action = Action.VIEW_JUDGMENTS
    add_action = change_action = NOBODY  # written by the annotator API
    list_display = ["created_at", "judgment", "old_choice", "new_choice"]
    list_filter = ["old_choice", "new_choice"]
    search_fields = ["judgment__annotator__username", "judgment__item__external_id"]
    raw_id_fields = ["judgment"]
