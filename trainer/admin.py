"""Admin for runs: the list with status and progress, a read-only page with lineage, evaluation and metrics, a
"start a run" form (from a snapshot, like a run, or PPO/RLOO from a reward model) and cancelling.

Who may do what comes from project roles (core.authz through core.admin), not from Django model permissions: ML
engineers of the project (and superusers) start and cancel; leads only look.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import NOBODY, ProjectScopedAdmin, ProjectScopedMixin, project_action
from core.authz import Action, check, projects_where
from core.errors import TandemError
from rewards.errors import DatasetTampered
from rewards.models import DatasetSnapshot
from trainer import admin_limits  # noqa: F401  (registers the superusers' admin of per-project run limits)
from trainer.configs import KINDS, TRAINING_KINDS, ConfigError, defaults, fields, set_options_check
from trainer.errors import RunNotCancellable
from trainer.models import (
    NEEDS_REWARD_MODEL,
    POLICY_KINDS,
    Checkpoint,
    Kind,
    RunMetric,
    Status,
    TrainingRun,
    WorkerCapability,
)
from trainer.selectors import (
    checkpoint_can_download_in,
    id_from_query,
    run_can_start,
    run_metrics_summary,
    runs_visible_to,
)
from trainer.services.runs import run_cancel, run_start


def _settings_text(kind: str, config: dict) -> str:
    """A run's settings other than base_model that differ from the kind's defaults, as key=value lines."""
    base = defaults(kind) if kind in KINDS else {}
    lines = []
    for key, value in config.items():
        if key == "base_model" or base.get(key, object()) == value:
            continue
        text = "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(value, list):  # lora_target_modules: the --set form, names joined by commas
            text = ",".join(map(str, value))
        lines.append(f"{key}={text}")
    return "\n".join(lines)


class RunStartForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k, Kind(k).label) for k in TRAINING_KINDS])  # generate: on an evaluation set
    snapshot = forms.ModelChoiceField(queryset=DatasetSnapshot.objects.none(), label="Dataset snapshot")
    reward_model = forms.ModelChoiceField(
        queryset=TrainingRun.objects.none(),
        required=False,
        label="Reward model run",
        help_text="PPO and RLOO only: a succeeded reward-model run of the same project.",
    )
    # A succeeded run of the project whose final checkpoint is a causal LM (SFT, DPO, PPO, RLOO): chosen, not typed.
    base_model_run = forms.ModelChoiceField(
        queryset=TrainingRun.objects.none(),
        required=False,
        label="Base model: a run",
        help_text="Start from (and, for DPO, PPO and RLOO, stay close to) a succeeded run of the same project, an SFT "
        "run say; or leave empty and name a model below.",
    )
    # Checked by run_start with everything else (an empty one is "This field is required." there).
    base_model = forms.CharField(
        max_length=500,
        required=False,
        label="Base model: a path",
        help_text="run:ID (a succeeded run of this project), a folder under the model roots, or a hub id where the "
        "server allows them. Leave empty when a run is chosen above.",
    )
    settings = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60, "spellcheck": "false"}),
        help_text="One key=value a line, as start_run --set; settings left out keep the defaults listed below.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        projects = projects_where(user=user, action=Action.START_RUNS)
        self.fields["snapshot"].queryset = DatasetSnapshot.objects.filter(project__in=projects).select_related(
            "project"
        )
        self.fields["reward_model"].queryset = TrainingRun.objects.filter(
            project__in=projects, kind=Kind.REWARD_MODEL, status=Status.SUCCEEDED
        ).select_related("project")
        self.fields["base_model_run"].queryset = TrainingRun.objects.filter(
            project__in=projects, kind__in=sorted(POLICY_KINDS), status=Status.SUCCEEDED
        ).select_related("project")

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        cleaned["config"], cleaned["settings_errors"] = {}, {}
        if kind and "settings" in cleaned:
            lines = [line.strip() for line in cleaned["settings"].splitlines() if line.strip()]
            # Lines that cannot be read are not form errors here: run_start reports them with every other problem.
            cleaned["config"], cleaned["settings_errors"] = set_options_check(lines, kind=kind)
        return cleaned

    def base_model_value(self) -> tuple[str, str | None]:
        """(the base_model run_start gets, a problem with it): the chosen run as run:ID, else the typed one."""
        typed = (self.cleaned_data.get("base_model") or "").strip()
        chosen = self.cleaned_data.get("base_model_run")
        if chosen is None:
            return typed, None
        value = f"run:{chosen.pk}"
        if typed and typed != value:
            return value, f"A run is chosen as the base model ({value}); leave the path empty or name the same run."
        return value, None

    def can_be_checked(self) -> bool:
        """Whether run_start can look at the rest: it needs a kind and a snapshot it may use."""
        return "kind" in self.cleaned_data and "snapshot" in self.cleaned_data


# run_start's names for problems -> the form field that shows them; every other name is a setting.
FORM_FIELD_FOR_ERROR = {
    "kind": "kind",
    "base_model": "base_model",
    "reward_model_run": "reward_model",
    "snapshot": "snapshot",
}


class CheckpointInline(ProjectScopedMixin, admin.TabularInline):
    """A run's checkpoints, read-only: the worker writes them (trainer.checkpoints), nobody edits them. `obj` in the
    permission methods is the run, whose project decides."""

    model = Checkpoint
    project_path = "project"  # of the parent run
    view_action = Action.VIEW_RUNS
    add_action = change_action = delete_action = NOBODY
    extra = max_num = 0
    can_delete = False
    fields = ["step", "final", "resumable", "metrics_text", "size_bytes", "deleted_at", "created_at", "download"]
    readonly_fields = fields
    verbose_name_plural = "checkpoints (files sha256-checked on download)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Checkpoint]:
        # The parent run's page only shows it to those who may see the run; the inline lists that run's rows.
        return admin.TabularInline.get_queryset(self, request).order_by("step")

    def has_view_permission(self, request, obj=None) -> bool:
        return self._can(request, self.view_action, obj)  # obj: the run (None: in some project, for the queryset)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="metrics")
    def metrics_text(self, checkpoint: Checkpoint) -> str:
        return ", ".join(f"{k} {v:.4g}" for k, v in sorted(checkpoint.metrics.items()) if isinstance(v, int | float))

    @admin.display(description="files")
    def download(self, checkpoint: Checkpoint) -> str:
        if checkpoint.deleted_at is not None:
            return "removed (keep_checkpoints)"
        request = getattr(self, "_request", None)
        if request is not None and not checkpoint_can_download_in(user=request.user, project=checkpoint.run.project_id):
            return f"{len(checkpoint.manifest)} files"
        url = reverse("trainer:checkpoint-download", kwargs={"checkpoint_id": checkpoint.pk})
        return format_html('<a href="{}">Download ({} files)</a>', url, len(checkpoint.manifest))

    def get_formset(self, request, obj=None, **kwargs):
        self._request = request  # download() decides per user; the inline has no other way to see the request
        return super().get_formset(request, obj, **kwargs)


@admin.register(TrainingRun)
class TrainingRunAdmin(ProjectScopedAdmin):
    view_action = Action.VIEW_RUNS
    # Runs are started through the start form, which validates and queues them, and never edited or deleted.
    add_action = change_action = delete_action = NOBODY
    list_display = [
        "id",
        "kind",
        "project",
        "snapshot",
        "status_label",
        "progress",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "kind", "project"]
    list_select_related = ["project", "snapshot", "created_by"]
    search_fields = ["id", "error"]
    actions = ["cancel_runs"]
    inlines = [CheckpointInline]
    change_form_template = "admin/trainer/trainingrun/change_form.html"
    change_list_template = "admin/trainer/trainingrun/change_list.html"
    fields = [
        "project",
        "kind",
        "status_label",
        "progress",
        "snapshot",
        "reward_model",
        "based_on",
        "resume_from",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "time_limit_seconds",
        "cancel_requested",
        "error",
        "error_traceback",
        "device",
        "worker",
        "celery_task_id",
        "output_dir",
        "config_json",
    ]
    readonly_fields = fields

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return self._can(request, Action.START_RUNS)

    def get_queryset(self, request: HttpRequest) -> QuerySet[TrainingRun]:
        return runs_visible_to(user=request.user)

    @admin.display(description="status", ordering="status")
    def status_label(self, run: TrainingRun) -> str:
        if run.status == Status.RUNNING and run.cancel_requested:
            return "Running (cancel requested)"
        if run.status == Status.QUEUED:  # why it is not running yet, from the task outbox
            from trainer.queue_state import run_queue_label, run_queue_state

            return run_queue_label(run=run, queue=run_queue_state(run=run))
        return run.get_status_display()

    @admin.display(description="progress")
    def progress(self, run: TrainingRun) -> str:
        fraction = run.fraction_done
        if fraction is None:
            return "–"
        return format_html(
            '<progress max="1" value="{}"></progress> {} / {} ({}%)',
            f"{fraction:.4f}",
            run.step,
            run.total_steps,
            round(fraction * 100),
        )

    @admin.display(description="config")
    def config_json(self, run: TrainingRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(run.config, indent=2))

    @project_action(action=Action.START_RUNS, description="Cancel the selected runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[TrainingRun]) -> None:
        done, refused = 0, []
        for run in queryset:
            try:
                run_cancel(run=run, user=request.user)
                done += 1
            except TandemError as exc:
                refused.append(exc.detail)
        if done:
            self.message_user(request, f"Cancel requested for {done} run(s).", messages.SUCCESS)
        for detail in refused:
            self.message_user(request, detail, messages.WARNING)

    def get_urls(self):
        own = [
            path("start/", self.admin_site.admin_view(self.start_view), name="trainer_trainingrun_start"),
            path(
                "<id:run_id>/cancel/", self.admin_site.admin_view(self.cancel_view), name="trainer_trainingrun_cancel"
            ),
        ]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra = {"can_start": self.has_cancel_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if run is not None:
            extra.update(
                run=run,
                can_start=run_can_start(user=request.user, project=run.project_id),
                metrics_summary=run_metrics_summary(run=run),
                metric_count=RunMetric.objects.filter(run=run).count(),
                lineage_json=json.dumps(run.lineage, indent=2) if run.lineage else "",
                evaluation_rows=sorted(run.evaluation.items()),
                online_kinds=[(k, Kind(k).label) for k in sorted(NEEDS_REWARD_MODEL)],
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def cancel_view(self, request: HttpRequest, run_id: int):
        run = get_object_or_404(TrainingRun, pk=run_id)
        check(user=request.user, action=Action.START_RUNS, project=run.project_id, what="cancel runs")
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:trainer_trainingrun_change", args=[run.pk]))
        try:
            run = run_cancel(run=run, user=request.user)
            done = "cancelled" if run.status == Status.CANCELLED else "asked to stop at its next step"
            self.message_user(request, f"Run {run.pk} {done}.", messages.SUCCESS)
        except RunNotCancellable as exc:
            self.message_user(request, exc.detail, messages.WARNING)
        return HttpResponseRedirect(reverse("admin:trainer_trainingrun_change", args=[run.pk]))

    def start_view(self, request: HttpRequest):
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        form = RunStartForm(request.POST or None, user=request.user, initial=self._start_initial(request))
        # Even when the form found something wrong, run_start checks the rest: one submit shows every problem.
        if request.method == "POST" and (form.is_valid() or form.can_be_checked()):
            run = self._start(request, form)
            if run is not None:
                self.message_user(request, f"Run {run.pk} queued.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:trainer_trainingrun_change", args=[run.pk]))
        kind = form["kind"].value() or Kind.REWARD_MODEL
        context = {
            **self.admin_site.each_context(request),
            "title": "Start a training run",
            "form": form,
            "opts": self.model._meta,
            "field_docs": [
                {"kind": k, "label": Kind(k).label, "fields": list(fields(k).values())} for k in TRAINING_KINDS
            ],
            "selected_kind": kind,
        }
        return TemplateResponse(request, "admin/trainer/trainingrun/start.html", context)

    def _start_initial(self, request: HttpRequest) -> dict:
        """From the query string: ?snapshot=ID, ?like=RUN (same kind, data and settings), ?reward_model=RUN&kind=,
        ?base_model_run=RUN (start from that run's checkpoint)."""
        params, initial = request.GET, {}
        if id_from_query(params.get("like")):
            like = runs_visible_to(user=request.user).filter(pk=id_from_query(params["like"])).first()
            if like is not None:
                initial.update(
                    kind=like.kind,
                    snapshot=like.snapshot_id,
                    reward_model=like.reward_model_id,
                    base_model=like.config.get("base_model", ""),
                    settings=_settings_text(like.kind, like.config),
                    like=like.pk,
                )
        if id_from_query(params.get("reward_model")):
            reward_model = runs_visible_to(user=request.user).filter(pk=id_from_query(params["reward_model"])).first()
            if reward_model is not None:
                initial.update(
                    reward_model=reward_model.pk,
                    snapshot=reward_model.snapshot_id,
                    kind=Kind.PPO,
                    base_model=reward_model.config.get("base_model", ""),
                )
        if id_from_query(params.get("base_model_run")):  # "Train DPO from this SFT run"
            initial["base_model_run"] = id_from_query(params["base_model_run"])
        if id_from_query(params.get("snapshot")):
            initial["snapshot"] = id_from_query(params["snapshot"])
        if params.get("kind") in KINDS:
            initial["kind"] = params["kind"]
        return initial

    def _start(self, request: HttpRequest, form: RunStartForm) -> TrainingRun | None:
        """run_start with the form's values; each problem it reports goes on its field. Nothing is queued while the
        form has errors of its own: they go to run_start as input errors, and are shown once."""
        data = form.cleaned_data
        like_id = request.GET.get("like", "")
        based_on = (
            runs_visible_to(user=request.user).filter(pk=id_from_query(like_id)).first()
            if id_from_query(like_id)
            else None
        )
        form_errors = {field: " ".join(messages) for field, messages in form.errors.items()}
        shown = set(form_errors)
        input_errors = {**data["settings_errors"], **form_errors}
        base_model, base_model_error = form.base_model_value()
        if base_model_error and "base_model" not in input_errors:
            input_errors["base_model"] = base_model_error
        try:
            return run_start(
                kind=data["kind"],
                snapshot=data["snapshot"],
                config={**data["config"], "base_model": base_model},
                reward_model=data.get("reward_model"),
                created_by=request.user,
                based_on=based_on,
                input_errors=input_errors,
            )
        except ConfigError as exc:
            self._errors_on_fields(form, exc.errors, skip=shown)
        except DatasetTampered as exc:
            form.add_error("snapshot", f"Refused: {exc.detail}")
            self._errors_on_fields(form, exc.extra.get("errors", {}), skip=shown | {"snapshot"})
        except TandemError as exc:
            form.add_error(None, exc.detail)
        return None

    @staticmethod
    def _errors_on_fields(form: RunStartForm, errors: dict[str, str], *, skip: set[str]) -> None:
        for field, message in errors.items():
            target = FORM_FIELD_FOR_ERROR.get(field, "settings")
            if field in skip or (target in skip and target != "settings"):
                continue  # the form already shows it
            form.add_error(target, message if target != "settings" else f"{field}: {message}")


@admin.register(WorkerCapability)
class WorkerCapabilityAdmin(admin.ModelAdmin):
    """The worker registry for operators (docs/SCALING.md): superusers only (Django's model permissions, which no
    role group holds), read-only: rows are written by the workers themselves (trainer.services.workers)."""

    list_display = [
        "name", "gpu_count", "cpu_processes", "cuda", "bf16", "deepspeed", "bitsandbytes", "vllm", "torch_version",
        "last_seen_at", "stopped_at",
    ]  # fmt: skip
    list_filter = ["cuda", "deepspeed", "bitsandbytes", "vllm"]
    search_fields = ["name"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in WorkerCapability._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
