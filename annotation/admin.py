"""Admin for the annotation domain, scoped per project (core.admin). Criteria versions are read-only once made;
imports and memberships go through their services."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path

from annotation.admin_labelled import labelled_import_view
from annotation.admin_reports import SkippedFilter
from annotation.jobs import KIND as IMPORT_KIND
from annotation.jobs import items_import_submit
from annotation.models import (
    AnnotationSession,
    Assignment,
    Batch,
    CriteriaVersion,
    Demonstration,
    ImportRecord,
    Item,
    Judgment,
    Membership,
    Project,
    QualificationAttempt,
)
from annotation.services import ImportRejected, ImportReport, criteria_version_create, project_create
from annotation.services.batches import batch_close
from annotation.services.demonstration_review import REASON_MAX_CHARS, demonstration_review
from annotation.services.imports import IMPORT_KINDS
from annotation.services.members import MemberError, member_add, member_remove
from annotation.services.projects import DEFAULT_CRITERIA
from annotation.services.qualification import qualification_reset
from core.admin import NOBODY, ProjectScopedAdmin, ProjectScopedInline, project_action
from core.authz import Action, check, may
from core.errors import TandemError
from core.jobs import job_get_for, job_progress


class MembershipForm(forms.ModelForm):
    """A member is named by username, as in the API and `add_members`: no list of every user on the instance."""

    username = forms.CharField(max_length=150)

    class Meta:
        model = Membership
        fields = ["role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["username"].initial = self.instance.user.get_username()
            self.fields["username"].disabled = True  # a membership changes role; another user is another row

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if not get_user_model().objects.filter(username=username).exists():
            raise forms.ValidationError(f"No user named {username!r}.")
        return username


def _membership_save(*, project: Project, form: MembershipForm) -> Membership:
    try:
        membership, _ = member_add(
            project=project, username=form.cleaned_data["username"], role=form.cleaned_data["role"]
        )
    except MemberError as exc:  # the form checked the user exists; this is a race with a deletion
        raise forms.ValidationError(str(exc)) from exc
    return membership


class MembershipInline(ProjectScopedInline, admin.TabularInline):
    model = Membership
    form = MembershipForm
    fields = ["username", "role"]
    extra = 1
    view_action = change_action = add_action = delete_action = Action.MANAGE_MEMBERS


class CriteriaVersionInline(ProjectScopedInline, admin.TabularInline):
    model = CriteriaVersion
    extra = 0
    fields = ["number", "tie_rule", "created_at", "created_by"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True
    view_action = Action.VIEW_PROJECT


class ImportItemsForm(forms.Form):
    batch = forms.CharField(max_length=200, help_text="Batch name; made if it does not exist.")
    file = forms.FileField(help_text="JSONL or .jsonl.gz: the import format, or HH-RLHF chosen/rejected lines.")
    keep_hh_gold = forms.BooleanField(required=False, label="Keep HH-RLHF's known preference as gold")
    kind = forms.ChoiceField(
        choices=[
            ("", "The batch's kind (comparison for a new batch)"),
            *((k, Batch.Kind(k).label) for k in IMPORT_KINDS),
        ],
        required=False,
        help_text="A new batch's kind. Demonstration: prompt-only lines, annotators write the response. An existing "
        "batch of another kind is refused.",
    )


class ProjectForm(forms.ModelForm):
    def clean_identity_leak_patterns(self):
        value = self.cleaned_data.get("identity_leak_patterns")
        if value in (None, ""):
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise forms.ValidationError('A JSON list of names, for example ["GPT", "OpenAI"].')
        return [v.strip() for v in value]


@admin.register(Project)
class ProjectAdmin(ProjectScopedAdmin):
    form = ProjectForm
    list_display = ["name", "overlap", "gold_rate", "session_minutes", "session_max_tasks", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline, CriteriaVersionInline]
    change_form_template = "admin/annotation/project/change_form.html"
    project_path = "pk"
    view_action = Action.VIEW_PROJECT
    change_action = Action.CHANGE_PROJECT
    # add_action None: new projects are made by superusers (or `import_items`), who then name their leads.

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        # Memberships go through the service, so that groups and the staff flag follow the role in one transaction.
        project = form.instance
        # What Django's change message reads from a saved formset.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for member_form in formset.forms:
            if not member_form.has_changed() and member_form not in formset.deleted_forms:
                continue
            if member_form in formset.deleted_forms:
                if member_form.instance.pk:
                    member_remove(project=project, username=member_form.instance.user.get_username())
                    formset.deleted_objects.append(member_form.instance)
            elif member_form.cleaned_data.get("username"):
                created = not member_form.instance.pk
                saved = _membership_save(project=project, form=member_form)
                if created:
                    formset.new_objects.append(saved)
                else:
                    formset.changed_objects.append((saved, member_form.changed_data))
        return None

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
                "<id:project_id>/import/",
                self.admin_site.admin_view(self.import_view),
                name="annotation_project_import",
            ),
            path(
                "<id:project_id>/import-labelled/",
                self.admin_site.admin_view(lambda request, project_id: labelled_import_view(self, request, project_id)),
                name="annotation_project_import_labelled",
            ),
        ]
        return own + super().get_urls()

    def import_view(self, request, project_id: int):
        """The form queues the import as a job and comes back here with ?job=: the job's progress, refreshed while
        it runs, then its report. A closed batch is refused at once, as before."""
        project = get_object_or_404(Project, pk=project_id)
        check(user=request.user, action=Action.IMPORT_ITEMS, project=project, what="import items")
        form = ImportItemsForm(request.POST or None, request.FILES or None)
        report, job = None, None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                job = items_import_submit(
                    project=project,
                    batch_name=form.cleaned_data["batch"],
                    upload=upload,
                    keep_hh_gold=form.cleaned_data["keep_hh_gold"],
                    kind=form.cleaned_data["kind"] or None,
                    created_by=request.user,
                )
            except ImportRejected as exc:
                report = exc.report
                self.message_user(request, report.summary(), messages.ERROR)
            else:
                self.message_user(request, f"Import of {upload.name} queued (job {job.pk}).", messages.INFO)
                return redirect(f"{request.path}?job={job.pk}")
        elif (job_id := request.GET.get("job", "")).isdigit() and len(job_id) <= 18:
            job = job_get_for(user=request.user, job_id=int(job_id), kind=IMPORT_KIND)
            if job.project_id != project.pk:
                raise Http404("No such import.")
            report = ImportReport(**job.result) if job.result else None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import items into {project.name}",
            "project": project,
            "form": form,
            "report": report,
            "job": job,
            "progress": job_progress(job=job) if job is not None else None,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/annotation/project/import.html", context)


@admin.register(CriteriaVersion)
class CriteriaVersionAdmin(ProjectScopedAdmin):
    view_action = Action.VIEW_PROJECT
    add_action = delete_action = Action.CHANGE_PROJECT
    # change_action None: a version is immutable; a change is a new version.
    list_display = ["project", "number", "tie_rule", "created_at", "created_by"]
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
        if not (isinstance(project_id, str) and project_id.isdigit() and len(project_id) <= 18):
            project_id = None
        elif not may(user=request.user, action=Action.CHANGE_PROJECT, project=int(project_id)):
            project_id = None  # another project's criteria are not a starting point to hand out
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
        # Without a row (Django asks before it looks one up) the answer is the role's, so that a missing id and
        # another project's read alike; a version that batches pin is never deleted.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.batches.exists())


@admin.register(Batch)
class BatchAdmin(ProjectScopedAdmin):
    view_action = Action.VIEW_PROJECT
    add_action = change_action = Action.MANAGE_BATCHES
    list_display = ["name", "project", "kind", "status", "criteria_version", "created_at", "closed_at"]
    list_filter = ["status", "kind"]
    search_fields = ["name", "project__name"]
    readonly_fields = ["criteria_version", "created_at", "closed_at"]
    actions = ["close_batches"]

    def get_readonly_fields(self, request, obj=None):
        # A batch's kind decides where its judgments go (an evaluation batch stays out of dataset snapshots): chosen
        # when it is added, never changed after. Evaluation batches are made by evaluation.services only.
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.kind == Batch.Kind.LABELLED:
            # A labelled source stays closed (reopened, it would be served) and keeps its format (labelled import).
            return [*fields, "kind", "status", "source_format"]
        return [*fields, "kind"] if obj is not None else fields

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "kind":
            # Evaluation batches come from evaluation.services, labelled sources from the labelled import.
            made_elsewhere = (Batch.Kind.EVALUATION, Batch.Kind.LABELLED)
            kwargs["choices"] = [(k, label) for k, label in Batch.Kind.choices if k not in made_elsewhere]
            field = super().formfield_for_choice_field(db_field, request, **kwargs)
            field.required = False  # left out: a comparison batch, as before batches had kinds
            return field
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "writers_per_item" and field is not None:
            field.required = False  # only demonstration batches use it; left out, it keeps its value (1 when new)
        return field

    def save_model(self, request, obj, form, change):
        if obj.writers_per_item is None:
            obj.writers_per_item = form.initial.get("writers_per_item") or 1
        if not change:
            obj.kind = obj.kind or Batch.Kind.COMPARISON
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

    @project_action(
        action=Action.MANAGE_BATCHES,
        description="Close the selected batches (no more assignments; final agreement snapshot)",
    )
    def close_batches(self, request, queryset):
        closed = [batch.name for batch in queryset if batch_close(batch=batch, user=request.user)[1]]
        already = queryset.count() - len(closed)
        if closed:
            self.message_user(request, f"Closed {len(closed)} batch(es): {', '.join(closed)}.", messages.SUCCESS)
        if already:
            self.message_user(request, f"{already} batch(es) were already closed.", messages.INFO)


@admin.register(Item)
class ItemAdmin(ProjectScopedAdmin):
    """Items unblinded (model names, gold): only roles that may see them, in their projects; read-only here."""

    view_action = Action.VIEW_ITEMS
    list_display = ["id", "external_id", "batch", "stratum", "category", "gold", "response_a_model", "response_b_model"]
    list_filter = ["stratum", "gold"]
    search_fields = ["external_id", "prompt", "category"]
    raw_id_fields = ["batch", "project"]
    readonly_fields = ["dedupe_key", "created_at"]
    show_full_result_count = False  # counting millions of rows on every page is slow


@admin.register(Membership)
class MembershipAdmin(ProjectScopedAdmin):
    """Adding, changing and removing go through the membership services (groups and staff flag follow)."""

    view_action = add_action = change_action = delete_action = Action.MANAGE_MEMBERS
    form = MembershipForm
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "project__name"]

    def get_fields(self, request, obj=None):
        return ["username", "role"] if obj is not None else ["project", "username", "role"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["fields"] = ["project", "role"]
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change):
        project = obj.project if change else form.cleaned_data["project"]
        saved = _membership_save(project=project, form=form)
        obj.pk, obj.user, obj.project = saved.pk, saved.user, saved.project
        obj._state.adding = False

    def delete_model(self, request, obj):
        member_remove(project=obj.project, username=obj.user.get_username())

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("project", "user"):
            self.delete_model(request, membership)


@admin.register(ImportRecord)
class ImportRecordAdmin(ProjectScopedAdmin):
    view_action = Action.IMPORT_ITEMS
    add_action = change_action = NOBODY  # written by the import service
    list_display = ["created_at", "project", "batch", "filename", "status", "lines", "created", "skipped", "seconds"]
    list_filter = ["status"]


class ReadOnlyAdmin(ProjectScopedAdmin):
    """Sessions, leases and judgments are written by the annotator loop only; the admin shows them to the roles
    that may see votes (leads), in their projects."""

    view_action = Action.VIEW_JUDGMENTS
    add_action = change_action = NOBODY


@admin.register(AnnotationSession)
class AnnotationSessionAdmin(ReadOnlyAdmin):
    list_display = ["annotator", "project", "started_at", "expires_at", "tasks_done", "max_tasks", "ended_at"]
    search_fields = ["annotator__username"]
    date_hierarchy = "started_at"


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    """Leases; a skip ends one early. Filter by "skipped" and search an annotator or an item to count their skips."""

    project_path = "item__project"
    list_display = [
        "id",
        "item",
        "annotator",
        "left_is_a",
        "leased_at",
        "lease_expires_at",
        "judged_at",
        "skipped_at",
        "skip_reason",
    ]
    list_filter = [SkippedFilter]
    search_fields = ["annotator__username", "item__external_id"]
    raw_id_fields = ["item", "session"]
    show_full_result_count = False


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    project_path = "batch__project"
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
        "revised_at",
    ]
    list_filter = ["choice", "too_fast", "is_gold", "gold_correct"]
    search_fields = ["annotator__username", "item__external_id"]
    raw_id_fields = ["item", "assignment"]
    show_full_result_count = False


@admin.register(QualificationAttempt)
class QualificationAttemptAdmin(ProjectScopedAdmin):
    """Qualification attempts, written by the annotator loop (annotation.services.qualification): read-only for the
    roles that see agreement; "allow another attempt" for those who manage members."""

    view_action = Action.VIEW_AGREEMENT
    add_action = change_action = NOBODY
    list_display = [
        "annotator",
        "project",
        "started_at",
        "finished_at",
        "answered",
        "size",
        "correct",
        "score",
        "passed",
        "criteria_version",
        "reset_at",
    ]
    list_filter = ["passed"]
    search_fields = ["annotator__username"]
    actions = ["reset_attempts"]

    @project_action(
        action=Action.MANAGE_MEMBERS,
        description="Allow another attempt (the annotators' attempts so far are kept, marked reset)",
    )
    def reset_attempts(self, request, queryset):
        pairs = set(queryset.values_list("project_id", "annotator_id"))
        for project_id, annotator_id in pairs:
            project = Project.objects.get(pk=project_id)
            qualification_reset(project=project, annotator_id=annotator_id, by=request.user)
        self.message_user(request, f"{len(pairs)} annotator(s) may take the qualification again.", messages.SUCCESS)


class RejectDemonstrationsForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=REASON_MAX_CHARS,
        help_text="Required: the writers see nothing of it, the lead's figures and the SFT lineage do.",
    )


@admin.register(Demonstration)
class DemonstrationAdmin(ProjectScopedAdmin):
    """Written demonstrations and their reviews (leads). Reviews go through annotation.services.demonstration_review:
    accept as written, or reject with a reason asked for on an intermediate page; an edit before accepting is made on
    the lead's review page or through the API. Rows are written by the annotator loop (or a labelled import)."""

    project_path = "batch__project"
    view_action = Action.REVIEW_DEMONSTRATIONS
    add_action = change_action = NOBODY
    list_display = ["id", "item", "batch", "writer", "status", "length", "seconds", "reviewed_by", "reviewed_at"]
    list_filter = ["status"]
    search_fields = ["writer__username", "item__external_id"]
    raw_id_fields = ["item", "assignment"]
    show_full_result_count = False
    actions = ["accept_demonstrations", "reject_demonstrations"]

    @admin.display(description="characters")
    def length(self, obj) -> int:
        return len(obj.text)

    def _review(self, request, queryset, *, decision: str, reason: str = "") -> None:
        done, refused = 0, []
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                review = demonstration_review(
                    demonstration_id=pk, reviewer=request.user, decision=decision, reason=reason
                )
            except TandemError as exc:
                refused.append(f"{pk}: {exc.detail}")
                continue
            done += review.changed
        if done:
            word = "Accepted" if decision == "accept" else "Rejected"
            self.message_user(request, f"{word} {done} demonstration(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, f"Not reviewed: {'; '.join(refused)}", messages.WARNING)

    @project_action(action=Action.REVIEW_DEMONSTRATIONS, description="Accept the selected demonstrations as written")
    def accept_demonstrations(self, request, queryset):
        self._review(request, queryset, decision="accept")

    @project_action(
        action=Action.REVIEW_DEMONSTRATIONS, description="Reject the selected demonstrations (with a reason)"
    )
    def reject_demonstrations(self, request, queryset):
        if not queryset.exists():  # nothing selected that this user may see: no form to fill in
            self.message_user(request, "No demonstration selected.", messages.WARNING)
            return None
        form = RejectDemonstrationsForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            self._review(request, queryset, decision="reject", reason=form.cleaned_data["reason"])
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Reject demonstrations",
            "demonstrations": list(queryset.select_related("item", "writer").order_by("pk")),
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/annotation/demonstration/reject.html", context)
