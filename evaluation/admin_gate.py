"""Admin for the deployment gate, scoped per project (core.admin): a gate policy is added as the project's next
version through evaluation.services.gate and never changed; decisions, releases and the audit log are read-only
records (the audit log has no delete, no action at all); "Release the approved checkpoint" on decisions goes through
the same service as the API and `manage.py release`."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from core.admin import NOBODY, ProjectScopedAdmin, project_action
from core.authz import Action
from core.errors import TandemError
from evaluation.models import AuditEvent, GateDecision, GatePolicy, Release
from evaluation.services.gate import KNOWN_FLAGS, POLICY_FIELDS, GatePolicyInvalid, gate_policy_create, release


class GatePolicyForm(forms.ModelForm):
    blocking_flags = forms.MultipleChoiceField(
        choices=[(f, f) for f in KNOWN_FLAGS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Flags that fail the gate when the evaluation raises them.",
    )

    class Meta:
        model = GatePolicy
        fields = ["project", *POLICY_FIELDS]


def _checks_table(checks: list[dict]) -> str:
    rows = format_html_join(
        "",
        '<tr><td>{}</td><td>{}</td><td>{}</td><td style="color:{}">{}</td><td>{}</td></tr>',
        (
            (
                c.get("label") or c["criterion"],
                c.get("value"),
                c.get("threshold"),
                "inherit" if c.get("passed") else "#b00020",
                "passed" if c.get("passed") else "failed",
                c.get("evidence", ""),
            )
            for c in checks
        ),
    )
    return format_html(
        "<table><thead><tr><th>criterion</th><th>value</th><th>threshold</th><th>result</th><th>evidence</th>"
        "</tr></thead><tbody>{}</tbody></table>",
        rows,
    )


@admin.register(GatePolicy)
class GatePolicyAdmin(ProjectScopedAdmin):
    """Add = the project's next version (the service numbers it and writes the audit row); never changed."""

    view_action = Action.VIEW_RELEASES
    add_action = Action.MANAGE_GATE
    change_action = delete_action = NOBODY
    form = GatePolicyForm
    list_display = ["project", "version", *POLICY_FIELDS[:-1], "created_by", "created_at"]
    list_select_related = ["project", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["project", "version", *POLICY_FIELDS, "created_by", "created_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["project", *POLICY_FIELDS]
        return self.get_readonly_fields(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            base_clean = form.clean

            def clean(self):
                data = base_clean(self)
                try:
                    from evaluation.services.gate import _clean_policy

                    _clean_policy({name: data.get(name) for name in POLICY_FIELDS})
                except GatePolicyInvalid as exc:
                    for field, message in exc.extra.get("errors", {}).items():
                        self.add_error(field if field in self.fields else None, message)
                return data

            form.clean = clean
        return form

    def save_model(self, request, obj, form, change):
        policy = gate_policy_create(
            project=form.cleaned_data["project"],
            values={name: form.cleaned_data.get(name) for name in POLICY_FIELDS},
            created_by=request.user,
        )
        # The admin logs and redirects with `obj`: make it the row the service wrote.
        obj.pk, obj.version, obj.created_at = policy.pk, policy.version, policy.created_at
        obj._state.adding, obj._state.db = False, policy._state.db

    def save_related(self, request, form, formsets, change):
        pass  # nothing related; the form's own save() would write the row again


@project_action(action=Action.DECIDE_GATE, description="Release the approved checkpoint")
def release_checkpoint(modeladmin, request, queryset):
    decisions = list(
        queryset.select_related("evaluation_batch__batch", "evaluation_batch__candidate__run", "policy")[:2]
    )
    if len(decisions) != 1:
        modeladmin.message_user(request, "Select one approving decision to release.", messages.ERROR)
        return None
    try:
        made = release(decision=decisions[0], released_by=request.user)
    except TandemError as exc:
        modeladmin.message_user(request, f"Refused ({exc.code}): {exc.detail}", messages.ERROR)
        return None
    words = " over a failed criterion (override)" if made.override else ""
    modeladmin.message_user(
        request, f"Checkpoint {made.checkpoint_id} released{words} (release {made.pk}).", messages.SUCCESS
    )
    return None


@admin.register(GateDecision)
class GateDecisionAdmin(ProjectScopedAdmin):
    view_action = Action.VIEW_RELEASES
    add_action = change_action = delete_action = NOBODY
    actions = [release_checkpoint]
    list_display = [
        "id",
        "project",
        "evaluation_batch",
        "checkpoint",
        "verdict",
        "override_words",
        "reviewer",
        "created_at",
    ]
    list_select_related = ["project", "reviewer"]
    list_filter = ["verdict", "override"]
    fields = [
        "project",
        "evaluation_batch",
        "checkpoint",
        "policy",
        "verdict",
        "note",
        "override_words",
        "override_reason",
        "checks_table",
        "reviewer",
        "created_at",
    ]
    readonly_fields = fields

    @admin.display(description="override")
    def override_words(self, obj: GateDecision) -> str:
        if not obj.override:
            return "no"
        return format_html('<strong style="color:#b00020">override of a failed criterion</strong>')

    @admin.display(description="criteria")
    def checks_table(self, obj: GateDecision) -> str:
        return _checks_table(obj.checks or [])


@admin.register(Release)
class ReleaseAdmin(ProjectScopedAdmin):
    view_action = Action.VIEW_RELEASES
    add_action = change_action = delete_action = NOBODY
    list_display = ["id", "project", "checkpoint", "released_by", "released_at", "superseded_at", "override_words"]
    list_select_related = ["project", "released_by"]
    fields = [
        "project",
        "checkpoint",
        "decision",
        "released_by",
        "released_at",
        "superseded_at",
        "override_words",
        "package_path",
        "package_sha256",
    ]
    readonly_fields = fields

    @admin.display(description="override")
    def override_words(self, obj: Release) -> str:
        if not obj.override:
            return "no"
        return format_html('<strong style="color:#b00020">released over a failed criterion</strong>')


@admin.register(AuditEvent)
class AuditEventAdmin(ProjectScopedAdmin):
    """Append-only: no add, change or delete, and no actions (not even delete_selected)."""

    view_action = Action.VIEW_RELEASES
    add_action = change_action = delete_action = NOBODY
    actions = None
    list_display = ["at", "project", "kind", "actor", "policy_version", "checkpoint"]
    list_select_related = ["project", "actor"]
    list_filter = ["kind"]
    fields = ["project", "kind", "actor", "at", "policy_version", "checkpoint", "payload"]
    readonly_fields = fields
