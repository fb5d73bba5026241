"""Admin for the annotation domain. Criteria versions are read-only once made; imports go through the service."""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path

from annotation.models import (
    AnnotationSession,
    Assignment,
    Batch,
    CriteriaVersion,
    ImportRecord,
    Item,
    Judgment,
    Membership,
    Project,
)
from annotation.services import ImportRejected, criteria_version_create, items_import, project_create
from annotation.services.batches import batch_close
from annotation.services.projects import DEFAULT_CRITERIA


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


class CriteriaVersionInline(admin.TabularInline):
    model = CriteriaVersion
    extra = 0
    fields = ["number", "tie_rule", "created_at", "created_by"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class ImportItemsForm(forms.Form):
    batch = forms.CharField(max_length=200, help_text="Batch name; made if it does not exist.")
    file = forms.FileField(help_text="JSONL or .jsonl.gz: the import format, or HH-RLHF chosen/rejected lines.")
    keep_hh_gold = forms.BooleanField(required=False, label="Keep HH-RLHF's known preference as gold")


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "overlap", "gold_rate", "session_minutes", "session_max_tasks", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline, CriteriaVersionInline]
    change_form_template = "admin/annotation/project/change_form.html"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new project gets its first criteria version from the service.
        fields = {f: form.cleaned_data[f] for f in form.cleaned_data if f != "name"}
        created = project_create(name=form.cleaned_data["name"], created_by=request.user, **fields)
        obj.pk = created.pk
        obj._state.adding = False

    def get_urls(self):
        own = [
            path(
                "<int:project_id>/import/",
                self.admin_site.admin_view(self.import_view),
                name="annotation_project_import",
            )
        ]
        return own + super().get_urls()

    def import_view(self, request, project_id: int):
        project = get_object_or_404(Project, pk=project_id)
        if not self.has_change_permission(request, project):
            return redirect("admin:index")
        form = ImportItemsForm(request.POST or None, request.FILES or None)
        report = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                report = items_import(
                    project=project,
                    batch_name=form.cleaned_data["batch"],
                    source=upload.file,
                    filename=upload.name,
                    keep_hh_gold=form.cleaned_data["keep_hh_gold"],
                    created_by=request.user,
                )
                self.message_user(request, report.summary(), messages.SUCCESS)
                for warning in report.warnings:
                    self.message_user(request, warning, messages.WARNING)
            except ImportRejected as exc:
                report = exc.report
                self.message_user(request, report.summary(), messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import items into {project.name}",
            "project": project,
            "form": form,
            "report": report,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/annotation/project/import.html", context)


@admin.register(CriteriaVersion)
class CriteriaVersionAdmin(admin.ModelAdmin):
    list_display = ["project", "number", "tie_rule", "created_at", "created_by"]
    list_filter = ["project"]
    fields = [
        "project",
        "number",
        "dimensions",
        "disqualifiers",
        "tie_rule",
        "tie_guidance",
        "scope",
        "created_at",
        "created_by",
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:  # immutable once made: a change is a new version
            return self.fields
        return ["number", "created_at", "created_by"]

    def get_changeform_initial_data(self, request):
        # A new version starts from the project's current one, so editing means "copy and change".
        initial = super().get_changeform_initial_data(request)
        project_id = initial.get("project")
        current = (
            CriteriaVersion.objects.filter(project_id=project_id).order_by("-number").first() if project_id else None
        )
        source = current.__dict__ if current else DEFAULT_CRITERIA
        for key in ("dimensions", "disqualifiers", "tie_rule", "tie_guidance", "scope"):
            initial.setdefault(key, source[key])
        return initial

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = {k: form.cleaned_data[k] for k in ("dimensions", "disqualifiers", "tie_rule", "tie_guidance", "scope")}
        created = criteria_version_create(project=form.cleaned_data["project"], created_by=request.user, **data)
        obj.pk, obj.number = created.pk, created.number
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        return obj is not None and not obj.batches.exists()


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "status", "criteria_version", "created_at", "closed_at"]
    list_filter = ["project", "status"]
    search_fields = ["name", "project__name"]
    readonly_fields = ["criteria_version", "created_at", "closed_at"]
    actions = ["close_batches"]

    def save_model(self, request, obj, form, change):
        if not change:
            # A new batch pins the project's current criteria version.
            obj.criteria_version = CriteriaVersion.objects.filter(project=obj.project).order_by("-number").first()
        closing = change and "status" in form.changed_data and obj.status == Batch.Status.CLOSED
        if closing:
            # Closing goes through the service (closed_at, the batch_closed signal): save the other fields first.
            obj.status = form.initial["status"]
        elif "status" in form.changed_data and obj.status == Batch.Status.OPEN:
            obj.closed_at = None  # reopened
        super().save_model(request, obj, form, change)
        if closing:
            closed, _ = batch_close(batch=obj, user=request.user)
            obj.status, obj.closed_at = closed.status, closed.closed_at

    @admin.action(description="Close the selected batches (no more assignments; final agreement snapshot)")
    def close_batches(self, request, queryset):
        closed = [batch.name for batch in queryset if batch_close(batch=batch, user=request.user)[1]]
        already = queryset.count() - len(closed)
        if closed:
            self.message_user(request, f"Closed {len(closed)} batch(es): {', '.join(closed)}.", messages.SUCCESS)
        if already:
            self.message_user(request, f"{already} batch(es) were already closed.", messages.INFO)


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "external_id", "batch", "stratum", "category", "gold", "response_a_model", "response_b_model"]
    list_filter = ["project", "batch", "stratum", "gold"]
    search_fields = ["external_id", "prompt", "category"]
    raw_id_fields = ["batch", "project"]
    readonly_fields = ["dedupe_key", "created_at"]
    show_full_result_count = False  # counting millions of rows on every page is slow


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["project", "role"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user"]


@admin.register(ImportRecord)
class ImportRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "project", "batch", "filename", "status", "lines", "created", "skipped", "seconds"]
    list_filter = ["project", "status"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Sessions, leases and judgments are written by the annotator loop only; the admin shows them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AnnotationSession)
class AnnotationSessionAdmin(ReadOnlyAdmin):
    list_display = ["annotator", "project", "started_at", "expires_at", "tasks_done", "max_tasks", "ended_at"]
    list_filter = ["project"]
    search_fields = ["annotator__username"]
    date_hierarchy = "started_at"


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "item", "annotator", "left_is_a", "leased_at", "lease_expires_at", "judged_at"]
    list_filter = ["item__project"]
    search_fields = ["annotator__username", "item__external_id"]
    raw_id_fields = ["item", "session"]
    show_full_result_count = False


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "annotator",
        "item",
        "batch",
        "choice",
        "shown_left",
        "seconds",
        "too_fast",
        "is_gold",
        "gold_correct",
    ]
    list_filter = ["batch__project", "batch", "choice", "too_fast", "is_gold", "gold_correct"]
    search_fields = ["annotator__username", "item__external_id"]
    raw_id_fields = ["item", "assignment"]
    show_full_result_count = False
