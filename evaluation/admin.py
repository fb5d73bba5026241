"""Admin for evaluation, scoped per project (core.admin): evaluation sets are imported through a form (the add page)
and never edited; the set's action starts a generation run; generation runs on sets are read-only records."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core.admin import NOBODY, ProjectScopedAdmin, project_action
from core.authz import projects_where
from core.errors import TandemError
from evaluation.errors import EvalSetInvalid, EvalSetOverlap
from evaluation.models import EvalSet, Sampled
from evaluation.selectors import EVAL_SET_IMPORT, EVAL_SET_VIEW, GENERATION_START, eval_set_prompts
from evaluation.services.eval_sets import MAX_NAME, eval_set_import
from evaluation.services.generations import generation_start
from trainer.configs import ConfigError, set_options_check

PROMPTS_SHOWN = 200


class EvalSetImportForm(forms.Form):
    project = forms.ModelChoiceField(queryset=None)
    name = forms.CharField(max_length=MAX_NAME, help_text="The set's name: a name already used gets a new version.")
    file = forms.FileField(
        help_text='JSONL (or .jsonl.gz), one prompt a line: {"id", "prompt" | "messages", "stratum", "category", '
        '"reference"}. A file with any bad line imports nothing.'
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_where(user=user, action=EVAL_SET_IMPORT).order_by("name")


class GenerateForm(forms.Form):
    model = forms.CharField(
        max_length=1024,
        help_text="checkpoint:ID, run:ID (a finished run's final checkpoint) or a base-model folder under the "
        "model roots.",
    )
    n = forms.IntegerField(required=False, min_value=1, help_text="Responses per prompt (default 1).")
    temperature = forms.FloatField(required=False, min_value=0, help_text="Default 0.7; 0 is greedy.")
    top_p = forms.FloatField(required=False, help_text="Default 1.0.")
    max_new_tokens = forms.IntegerField(required=False, min_value=1, help_text="Default 256.")
    seed = forms.IntegerField(required=False, min_value=0, help_text="Default 42.")
    settings = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Other settings, key=value a line: reward_model_run=ID, reference_model=..., batch_size=...",
    )
    allow_overlap = forms.BooleanField(
        required=False,
        help_text="Generate even if prompts of the set appear in the model's training data (recorded with the run).",
    )

    FIELDS = ("n", "temperature", "top_p", "max_new_tokens", "seed")

    def config(self) -> tuple[dict, dict[str, str]]:
        lines = [line for line in (self.cleaned_data.get("settings") or "").splitlines() if line.strip()]
        config, errors = set_options_check(lines, kind="generate")
        for name in self.FIELDS:
            if self.cleaned_data.get(name) is not None:
                config[name] = self.cleaned_data[name]
        return config, errors


@project_action(action=GENERATION_START, description="Generate responses from a model")
def generate_responses(modeladmin, request, queryset):
    """Asks for the model and the sampling settings on an intermediate page, then queues the generate run and opens
    it. Every problem (settings, model, overlap with the model's training data) is shown on the form."""
    sets = list(queryset.select_related("project")[:2])
    if len(sets) != 1:
        modeladmin.message_user(request, "Select one evaluation set: a generation run samples one.", messages.ERROR)
        return None
    eval_set = sets[0]
    form = GenerateForm(request.POST if "apply" in request.POST else None)
    overlap_ids: list[str] = []
    if form.is_bound and form.is_valid():
        config, errors = form.config()
        try:
            sampled = generation_start(
                eval_set=eval_set,
                model=form.cleaned_data["model"],
                config=config,
                created_by=request.user,
                allow_overlap=form.cleaned_data["allow_overlap"],
                input_errors=errors,
            )
        except ConfigError as exc:
            for field, message in sorted(exc.errors.items()):
                form.add_error(field if field in form.fields else None, f"{field}: {message}")
        except EvalSetOverlap as exc:
            overlap_ids = exc.extra.get("ids", [])
            form.add_error("allow_overlap", exc.detail)
        except TandemError as exc:
            form.add_error("model" if exc.code in ("invalid_model", "run_unfinished") else None, exc.detail)
        else:
            modeladmin.message_user(
                request, f"Generation run {sampled.run_id} queued: {sampled.label} on {eval_set}.", messages.SUCCESS
            )
            return HttpResponseRedirect(reverse("admin:trainer_trainingrun_change", args=[sampled.run_id]))
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"Generate responses to {eval_set}",
        "eval_set": eval_set,
        "form": form,
        "overlap_ids": overlap_ids,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/evaluation/evalset/generate.html", context)


@admin.register(EvalSet)
class EvalSetAdmin(ProjectScopedAdmin):
    """Read-only once imported; the add page is the import form (evaluation.services.eval_sets)."""

    view_action = EVAL_SET_VIEW
    add_action = EVAL_SET_IMPORT
    change_action = delete_action = NOBODY  # immutable; generation runs and batches keep it (PROTECT)
    actions = [generate_responses]
    list_display = ["name", "version", "project", "prompt_count", "strata_text", "created_by", "created_at"]
    list_select_related = ["project", "created_by"]
    search_fields = ["name"]
    fields = [
        "project",
        "name",
        "version",
        "prompt_count",
        "strata",
        "sha256",
        "path",
        "created_by",
        "created_at",
        "prompt_table",
    ]
    readonly_fields = fields

    @admin.display(description="strata")
    def strata_text(self, obj: EvalSet) -> str:
        return ", ".join(f"{name} {count}" for name, count in (obj.strata or {}).items())

    @admin.display(description="prompts")
    def prompt_table(self, obj: EvalSet) -> str:
        prompts = list(eval_set_prompts(eval_set=obj)[:PROMPTS_SHOWN])
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    p.external_id,
                    p.stratum,
                    p.category,
                    (p.prompt or " / ".join(f"{m['role']}: {m['content']}" for m in p.messages or []))[:300],
                )
                for p in prompts
            ),
        )
        more = (
            format_html("<p>The first {} of {}.</p>", PROMPTS_SHOWN, obj.prompt_count)
            if obj.prompt_count > PROMPTS_SHOWN
            else ""
        )
        return format_html(
            '<table id="eval-prompts"><thead><tr><th>id</th><th>stratum</th><th>category</th><th>prompt</th></tr>'
            '</thead><tbody>{}</tbody></table>{}<p><a href="/api/v1/eval-sets/{}/?format=csv">All prompts as CSV</a>'
            "</p>",
            rows,
            more,
            obj.pk,
        )

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = EvalSetImportForm(request.POST or None, request.FILES or None, user=request.user)
        errors: list[dict] = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                eval_set = eval_set_import(
                    project=form.cleaned_data["project"],
                    name=form.cleaned_data["name"],
                    file=upload,
                    created_by=request.user,
                    filename=upload.name or "",
                )
            except EvalSetInvalid as exc:
                errors = exc.extra.get("errors", [])
                self.message_user(request, exc.detail, messages.ERROR)
            except TandemError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Imported {eval_set} ({eval_set.prompt_count} prompts) into {eval_set.project.name}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:evaluation_evalset_change", args=[eval_set.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import an evaluation set",
            "form": form,
            "errors": errors,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/evaluation/evalset/import.html", context)


@admin.register(Sampled)
class SampledAdmin(ProjectScopedAdmin):
    """Generation runs on evaluation sets: written with their run by evaluation.services.generations."""

    project_path = "eval_set__project"
    view_action = EVAL_SET_VIEW
    add_action = change_action = delete_action = NOBODY
    list_display = ["label", "eval_set", "run_link", "model_key", "overlap_allowed", "created_at"]
    list_select_related = ["eval_set__project", "run"]
    fields = ["eval_set", "run_link", "model_key", "label", "overlap_allowed", "overlap_ids", "created_at"]
    readonly_fields = fields

    @admin.display(description="run")
    def run_link(self, obj: Sampled) -> str:
        url = reverse("admin:trainer_trainingrun_change", args=[obj.run_id])
        return format_html('<a href="{}">run {} ({})</a>', url, obj.run_id, obj.run.get_status_display())


# Evaluation batches' admin (evaluation/admin_batches.py, by its owner) is imported here: add the import below.
from evaluation import (  # noqa: E402
    admin_batches,  # noqa: F401  (adds "make an evaluation batch" to SampledAdmin)
    admin_gate,  # noqa: F401  (the gate: policies, decisions, releases, audit log)
)
