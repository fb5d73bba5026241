"""Admin for rewards, scoped per project (core.admin): snapshots are read-only records; flag rules are what a lead
edits; the Batch changelist's action makes a dataset snapshot, which the admin shows read-only with its files."""

import dataclasses
from typing import Literal, get_args, get_origin, get_type_hints

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from annotation.admin import BatchAdmin as AnnotationBatchAdmin
from annotation.models import Batch
from core.admin import NOBODY, ProjectScopedAdmin, project_action
from core.authz import Action, check
from core.errors import TandemError
from core.jobs import job_get_for, job_progress
from core.models import Job
from rewards.downloads import raw_judgments_response
from rewards.errors import DatasetTampered
from rewards.jobs import KIND as DATASET_KIND
from rewards.jobs import dataset_job_submit
from rewards.metrics.flags import FLAG_RULE_HELP, FlagRules
from rewards.models import AgreementSnapshot, DatasetSnapshot, ProjectFlagRules, validate_flag_rules
from rewards.selectors import DATASET_FILE_NAMES, dataset_files
from rewards.services.datasets import VALIDATION_FRACTION_MAX, dataset_verify


@admin.register(AgreementSnapshot)
class AgreementSnapshotAdmin(ProjectScopedAdmin):
    project_path = "batch__project"
    view_action = Action.VIEW_AGREEMENT
    add_action = change_action = NOBODY  # computed by rewards' snapshot task
    list_display = ["batch", "computed_at", "judgment_count"]
    list_select_related = ["batch__project"]
    readonly_fields = ["batch", "computed_at", "judgment_count", "report"]


def _rule_fields() -> dict[str, forms.Field]:
    """One form field per flag rule (rewards.metrics.FlagRules), labelled and explained (FLAG_RULE_HELP): a band is
    two numbers, a choice a select, an optional threshold a number that may be left empty (the rule is then off)."""
    hints, defaults, result = get_type_hints(FlagRules), FlagRules(), {}
    for rule in dataclasses.fields(FlagRules):
        name, hint, help_text = rule.name, hints[rule.name], FLAG_RULE_HELP[rule.name]
        label = name.replace("_", " ").capitalize()
        args = [a for a in get_args(hint) if a is not type(None)]
        if get_origin(hint) is Literal:
            result[name] = forms.ChoiceField(label=label, help_text=help_text, choices=[(v, v) for v in get_args(hint)])
        elif get_origin(hint) is tuple:
            result[f"{name}__low"] = forms.FloatField(label=f"{label} from", min_value=0, max_value=1)
            result[f"{name}__high"] = forms.FloatField(
                label=f"{label} to", min_value=0, max_value=1, help_text=help_text
            )
        elif hint is int:
            result[name] = forms.IntegerField(label=label, help_text=help_text, min_value=0)
        else:
            optional = len(args) < len(get_args(hint))
            number = forms.FloatField(label=label, help_text=help_text, required=not optional, min_value=0)
            if name.endswith("_alpha") or name.endswith("_share") or "share_" in name:
                number.max_value = 1
                number.validators.append(MaxValueValidator(1))
            result[name] = number
        assert hasattr(defaults, name)
    return result


class _FlagRulesFormBase(forms.ModelForm):
    """Every rule as its own field, filled with the project's stored values (or the defaults for a new row), stored
    back whole: a project keeps the thresholds it was set up with when the defaults change."""

    class Meta:
        model = ProjectFlagRules
        fields = ["project"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = FlagRules.from_dict(self.instance.rules if self.instance.pk else {}).to_dict()
        for name, value in stored.items():
            if isinstance(value, list):
                self.initial.setdefault(f"{name}__low", value[0])
                self.initial.setdefault(f"{name}__high", value[1])
            else:
                self.initial.setdefault(name, value)

    def clean(self):
        cleaned = super().clean()
        rules = {}
        for rule in dataclasses.fields(FlagRules):
            name = rule.name
            if f"{name}__low" in self.fields:
                low, high = cleaned.get(f"{name}__low"), cleaned.get(f"{name}__high")
                if low is not None and high is not None and low > high:
                    self.add_error(f"{name}__high", "Must not be under the lower end.")
                rules[name] = [low, high]
            elif name in cleaned:
                rules[name] = cleaned[name]
        if not self.errors:
            try:
                validate_flag_rules(rules)
            except ValidationError as exc:
                raise forms.ValidationError(exc.messages) from exc
        self.rules = rules
        return cleaned

    def save(self, commit=True):
        self.instance.rules = self.rules
        return super().save(commit)


ProjectFlagRulesForm = type("ProjectFlagRulesForm", (_FlagRulesFormBase,), _rule_fields())


@admin.register(ProjectFlagRules)
class ProjectFlagRulesAdmin(ProjectScopedAdmin):
    view_action = Action.VIEW_AGREEMENT
    add_action = change_action = Action.CHANGE_PROJECT
    list_display = ["project", "updated_at"]
    form = ProjectFlagRulesForm


# --- Dataset snapshots ------------------------------------------------------------------------------------------


class DatasetSnapshotForm(forms.Form):
    weighting = forms.ChoiceField(choices=DatasetSnapshot.Weighting.choices, initial="vote")
    validation_fraction = forms.FloatField(
        min_value=0.0,
        max_value=VALIDATION_FRACTION_MAX,
        initial=0.1,
        help_text="Share of the prompts held out; a prompt's pairs all go to one side.",
    )
    seed = forms.IntegerField(min_value=0, initial=0, help_text="Same batches, rule and seed: the same split.")
    include_evaluation = forms.BooleanField(
        required=False,
        label="Include evaluation batches",
        help_text="Evaluation batches judge checkpoints against each other and are not training data: they are "
        "refused unless this is ticked, and the snapshot's manifest then lists them.",
    )
    sources = forms.ModelMultipleChoiceField(
        queryset=Batch.objects.none(),
        required=False,
        label="Labelled sources",
        help_text="Already-judged data imported with import_labelled, taken beside the batches: every row's source "
        "is human or the source's name, and the manifest lists each source's files and sha256s.",
    )

    def __init__(self, *args, project=None, kind: str = DatasetSnapshot.Kind.PREFERENCE, **kwargs):
        super().__init__(*args, **kwargs)
        demonstrations = Batch.SourceFormat.DEMONSTRATIONS
        sources = Batch.objects.filter(project=project, kind=Batch.Kind.LABELLED).order_by("created_at", "pk")
        sources = (
            sources.filter(source_format=demonstrations)
            if kind == DatasetSnapshot.Kind.SFT
            else sources.exclude(source_format=demonstrations)
        )
        self.fields["sources"].queryset = sources
        self.fields["sources"].label_from_instance = lambda b: f"{b.name} ({b.get_source_format_display()})"
        if kind == DatasetSnapshot.Kind.SFT:  # accepted demonstrations: no votes to weigh, no evaluation batch
            del self.fields["weighting"], self.fields["include_evaluation"]
            self.fields["sources"].help_text = "Labelled sources of demonstrations, taken beside the batches."


@project_action(action=Action.MAKE_DATASET, description="Make a dataset snapshot from the selected closed batches")
def make_dataset_snapshot(modeladmin, request, queryset):
    """Asks for the rule, fraction and seed on an intermediate page, then queues the snapshot as a job and opens the
    job's page, which follows it and opens the snapshot when it is made."""
    selected = list(queryset.select_related("project", "criteria_version").order_by("created_at", "pk"))
    projects = {b.project for b in selected}
    if len(projects) != 1:
        modeladmin.message_user(request, "Select batches of one project: a snapshot has one project.", messages.ERROR)
        return None
    project = projects.pop()
    # Labelled sources selected in the list are taken as sources; demonstration batches make an SFT snapshot.
    batches = [b for b in selected if b.kind != Batch.Kind.LABELLED]
    chosen_sources = [b for b in selected if b.kind == Batch.Kind.LABELLED]
    demonstration_kinds = {b.kind == Batch.Kind.DEMONSTRATION for b in batches} | {
        b.source_format == Batch.SourceFormat.DEMONSTRATIONS for b in chosen_sources
    }
    if len(demonstration_kinds) != 1:
        modeladmin.message_user(
            request,
            "Select demonstration batches (and sources of demonstrations) for an SFT snapshot, or judged batches "
            "(and labelled sources of preferences) for a preference snapshot, not both.",
            messages.ERROR,
        )
        return None
    kind = DatasetSnapshot.Kind.SFT if demonstration_kinds.pop() else DatasetSnapshot.Kind.PREFERENCE
    still_open = [b.name for b in batches if b.status != Batch.Status.CLOSED and b.kind != Batch.Kind.DEMONSTRATION]
    if still_open:
        modeladmin.message_user(
            request, f"Only closed batches can be exported; still open: {', '.join(still_open)}.", messages.ERROR
        )
        return None
    form = DatasetSnapshotForm(
        request.POST if "apply" in request.POST else None,
        project=project,
        kind=kind,
        initial={"sources": [b.pk for b in chosen_sources]},
    )
    if form.is_valid():
        settings_ = dict(form.cleaned_data)
        sources = [b.name for b in settings_.pop("sources")]
        settings_.setdefault("weighting", DatasetSnapshot.Weighting.VOTE)
        try:
            job = dataset_job_submit(
                project=project,
                batch_ids=[b.pk for b in batches],
                created_by=request.user,
                sources=sources,
                kind=kind,
                **settings_,
            )
        except TandemError as exc:
            modeladmin.message_user(request, exc.detail, messages.ERROR)
            return None
        modeladmin.message_user(request, f"Dataset snapshot queued (job {job.pk}).", messages.INFO)
        return redirect("admin:rewards_datasetsnapshot_job", job.pk)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Make an SFT snapshot" if kind == DatasetSnapshot.Kind.SFT else "Make a dataset snapshot",
        "project": project,
        "batches": selected,
        "kind": kind,
        "form": form,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/rewards/make_dataset_snapshot.html", context)


@project_action(action=Action.MAKE_DATASET, description="Download raw judgments (CSV) of the selected batch")
def download_raw_judgments(modeladmin, request, queryset):
    """One batch's judgments, streamed as CSV (rewards.downloads, the same as the API's ?format=csv)."""
    batches = list(queryset.select_related("criteria_version")[:2])
    if len(batches) != 1:
        modeladmin.message_user(request, "Select one batch: the download is one batch's judgments.", messages.ERROR)
        return None
    return raw_judgments_response(batch=batches[0], as_csv=True)


class BatchAdmin(AnnotationBatchAdmin):
    """annotation's Batch admin plus the export actions: annotation does not know rewards (dependencies point one
    way), so the actions are added from here."""

    actions = [*(AnnotationBatchAdmin.actions or ()), make_dataset_snapshot, download_raw_judgments]


if admin.site.is_registered(Batch):
    admin.site.unregister(Batch)
admin.site.register(Batch, BatchAdmin)


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(ProjectScopedAdmin):
    """Read-only: a snapshot is made by the Batch action, the API or `manage.py export_pairs`, and never edited."""

    view_action = Action.VIEW_DATASETS
    add_action = change_action = delete_action = NOBODY

    list_display = [
        "id",
        "project",
        "kind",
        "weighting",
        "prompt_format",
        "train_count",
        "validation_count",
        "excluded_count",
        "created_by",
        "created_at",
    ]
    list_filter = ["project", "kind", "weighting", "prompt_format"]
    list_select_related = ["project", "created_by"]
    fields = [
        "project",
        "kind",
        "batch_links",
        "source_files",
        "criteria_versions",
        "weighting",
        "validation_fraction",
        "seed",
        "prompt_format",
        "train_count",
        "validation_count",
        "excluded_count",
        "exclusions",
        "file_links",
        "directory",
        "created_by",
        "created_at",
    ]
    readonly_fields = fields

    @admin.display(description="batches")
    def batch_links(self, snapshot):
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:annotation_batch_change", args=[b.pk]), f"{b.name} ({b.get_status_display()})")
                for b in snapshot.batches.order_by("created_at", "pk")
            ),
        )

    @admin.display(description="labelled sources (imported files)")
    def source_files(self, snapshot):
        if not snapshot.sources:
            return "none"
        return format_html_join(
            "",
            "<p>{} ({}): {}</p>",
            (
                (
                    source.get("name"),
                    source.get("format"),
                    format_html_join(
                        ", ",
                        "{} <code>{}</code>",
                        ((f.get("filename"), f.get("sha256")) for f in source.get("files", [])),
                    )
                    or "no file recorded",
                )
                for source in snapshot.sources
            ),
        )

    @admin.display(description="excluded per reason")
    def exclusions(self, snapshot):
        return ", ".join(f"{reason}: {n}" for reason, n in snapshot.excluded_reasons.items()) or "none"

    @admin.display(description="files (sha256 checked on download)")
    def file_links(self, snapshot):
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td><code>{}</code></td></tr>',
            (
                (
                    reverse("admin:rewards_datasetsnapshot_file", args=[snapshot.pk, name]),
                    filename,
                    snapshot.sha256.get(name, ""),
                )
                for name, filename in DATASET_FILE_NAMES.items()
            ),
        )
        return format_html("<table><tr><th>file</th><th>sha256</th></tr>{}</table>", rows)

    def get_urls(self):
        own = [
            path(
                "<id:snapshot_id>/files/<str:name>/",
                self.admin_site.admin_view(self.file_view),
                name="rewards_datasetsnapshot_file",
            ),
            path("jobs/<id:job_id>/", self.admin_site.admin_view(self.job_view), name="rewards_datasetsnapshot_job"),
        ]
        return own + super().get_urls()

    def file_view(self, request, snapshot_id: int, name: str):
        snapshot = get_object_or_404(DatasetSnapshot, pk=snapshot_id)
        check(user=request.user, action=Action.VIEW_DATASETS, project=snapshot.project_id, what="download datasets")
        if name not in DATASET_FILE_NAMES:
            raise Http404("No such file.")
        try:
            dataset_verify(snapshot=snapshot, names=[name])
        except DatasetTampered as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return redirect("admin:rewards_datasetsnapshot_change", snapshot.pk)
        path_ = dataset_files(snapshot=snapshot)[name]
        return FileResponse(open(path_, "rb"), as_attachment=True, filename=f"dataset-{snapshot.pk}-{path_.name}")

    def job_view(self, request, job_id: int):
        """A snapshot job: its state, refreshed while it runs; once made, the snapshot's page; if it failed, why."""
        job = job_get_for(user=request.user, job_id=job_id, kind=DATASET_KIND)
        if job.state == Job.State.SUCCEEDED and job.result:
            result = job.result
            counts = result.get("counts", {})
            self.message_user(
                request,
                f"Dataset snapshot {result['id']}: {counts.get('train', 0)} train and {counts.get('validation', 0)} "
                f"validation pairs, {counts.get('excluded', 0)} items excluded.",
                messages.SUCCESS,
            )
            return redirect("admin:rewards_datasetsnapshot_change", result["id"])
        context = {
            **self.admin_site.each_context(request),
            "title": f"Dataset snapshot job {job.pk}",
            "job": job,
            "progress": job_progress(job=job),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/rewards/dataset_job.html", context)
