"""The runs API: start, list, read, follow (metrics) and cancel training runs, list a run's checkpoints and download
one. Views parse and delegate."""

from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.authz import Action, check, project_for, role_of
from rewards.models import DatasetSnapshot
from trainer.checkpoints import checkpoint_archive, checkpoint_archive_name, checkpoint_verify
from trainer.models import Checkpoint, Kind, Status, TrainingRun
from trainer.queue_state import run_queue_state
from trainer.selectors import (
    CHECKPOINT_DOWNLOAD_ACTION,
    base_model_runs_for,
    checkpoint_get,
    run_checkpoints,
    run_duration_seconds,
    run_evaluation_summary,
    run_flags,
    run_list,
    run_metrics_after,
    runs_visible_to,
)
from trainer.services.runs import run_cancel, run_start

MAX_ID = 2**63 - 1  # ids are bigints: a larger number is a 400, not an overflow in the database driver


class RunOutputSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    total = serializers.IntegerField(source="total_steps")
    progress = serializers.FloatField(source="fraction_done", allow_null=True)
    eta_seconds = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()
    queue_state = serializers.SerializerMethodField(
        help_text="While queued: why it is not running yet (waiting_for_broker with the last error, or "
        "waiting_for_worker), from the task outbox; null otherwise."
    )
    duration_seconds = serializers.SerializerMethodField(
        help_text="From its start to its end (to now while it runs); null if it never started."
    )
    evaluation_summary = serializers.SerializerMethodField(
        help_text="The kind's key evaluation figure (reward model: accuracy; DPO: reward_accuracy; PPO and RLOO: "
        "reward_gain; SFT: validation_perplexity); null before the run has one."
    )
    flags = serializers.SerializerMethodField(
        help_text="What the evaluation warns about: a reward model not shown to beat the 'prefer the longer answer' "
        "baseline (not_better_than_length), one whose reward follows answer length (reward_tracks_length), or one "
        "scored on no validation pairs (no_validation_pairs). Thresholds: TANDEM_RM_* settings."
    )

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "project",
            "kind",
            "status",
            "snapshot",
            "reward_model",
            "based_on",
            "resume_from",
            "config",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "step",
            "total",
            "progress",
            "eta",
            "eta_seconds",
            "time_limit_seconds",
            "cancel_requested",
            "error",
            "device",
            "compute",
            "output_dir",
            "evaluation",
            "lineage",
            "page_url",
            "queue_state",
            "duration_seconds",
            "evaluation_summary",
            "flags",
        ]

    def get_eta_seconds(self, run) -> float | None:
        if run.eta is None or run.status != Status.RUNNING:
            return None
        from django.utils import timezone

        return max(0.0, (run.eta - timezone.now()).total_seconds())

    def get_duration_seconds(self, run) -> float | None:
        return run_duration_seconds(run=run)

    @extend_schema_field(
        inline_serializer(
            "RunEvaluationSummary",
            fields={
                "name": serializers.CharField(),
                "label": serializers.CharField(),
                "value": serializers.FloatField(),
            },
            allow_null=True,
        )
    )
    def get_evaluation_summary(self, run) -> dict | None:
        return run_evaluation_summary(run=run)

    @extend_schema_field(
        inline_serializer(
            "RunFlag", fields={"code": serializers.CharField(), "detail": serializers.CharField()}, many=True
        )
    )
    def get_flags(self, run) -> list[dict]:
        return [flag.as_dict() for flag in run_flags(run=run)]

    def get_page_url(self, run) -> str:
        return f"/runs/{run.pk}/"

    @extend_schema_field(
        inline_serializer(
            "RunQueueState",
            fields={
                "state": serializers.ChoiceField(
                    choices=["waiting_for_broker", "waiting_for_worker", "failed_to_queue"]
                ),
                "attempts": serializers.IntegerField(),
                "last_error": serializers.CharField(),
                "since": serializers.DateTimeField(allow_null=True),
            },
            allow_null=True,
        )
    )
    def get_queue_state(self, run) -> dict | None:
        state = run_queue_state(run=run)
        return None if state is None else dict(state)


class RunListOutputSerializer(RunOutputSerializer):
    queue_state = None  # it reads the outbox per queued run: on the detail only

    class Meta(RunOutputSerializer.Meta):
        fields = [f for f in RunOutputSerializer.Meta.fields if f not in {"lineage", "config", "queue_state"}]


RunStartErrorSerializer = inline_serializer(
    "RunStartError",
    fields={
        "code": serializers.CharField(),
        "detail": serializers.CharField(),
        "errors": serializers.DictField(
            child=serializers.CharField(), required=False, help_text="A message per field: every problem at once."
        ),
    },
)


def _visible_run(request, run_id: int) -> TrainingRun:
    run = get_object_or_404(TrainingRun.objects.select_related("project", "created_by"), pk=run_id)
    check(user=request.user, action=Action.VIEW_RUNS, project=run.project_id, what="see its training runs")
    return run


class RunListCreateApi(APIView):
    throttle_scope = "run"  # its POST: TANDEM_THROTTLE_HEAVY per user (core/throttling.py)

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Kind.choices)
        snapshot = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="Dataset snapshot id.")
        reward_model_run = serializers.IntegerField(
            min_value=1,
            max_value=MAX_ID,
            required=False,
            allow_null=True,
            help_text="PPO and RLOO: a succeeded reward-model run of the project.",
        )
        based_on = serializers.IntegerField(
            min_value=1, max_value=MAX_ID, required=False, allow_null=True, help_text="The run this one repeats."
        )
        config = serializers.DictField(
            help_text="Settings for trainer.configs.validate_config; base_model is required: run:ID (a succeeded run "
            "of this project), a folder under the model roots, or a hub id where the server allows them.",
        )

    class FilterSerializer(serializers.Serializer):
        project = serializers.IntegerField(
            min_value=1, max_value=MAX_ID, required=False, help_text="Only this project's runs."
        )
        status = serializers.ChoiceField(choices=Status.choices, required=False)
        kind = serializers.ChoiceField(choices=Kind.choices, required=False)

    @extend_schema(parameters=[FilterSerializer], responses=RunListOutputSerializer(many=True))
    def get(self, request):
        # Every filter is validated (400 with the field), never handed to the database as it came.
        query = self.FilterSerializer(data={k: v for k, v in request.query_params.items() if v != ""})
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        runs = run_list(
            user=request.user,
            project_id=filters.get("project"),
            status=filters.get("status", ""),
            kind=filters.get("kind", ""),
        )
        return Response(RunListOutputSerializer(runs[:500], many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: RunOutputSerializer,
            400: RunStartErrorSerializer,
            403: RunStartErrorSerializer,
            409: RunStartErrorSerializer,
        },
        description="Every problem comes back at once: 400 `invalid_config` with `errors` by field (settings, "
        "`base_model`, `reward_model_run`); 409 `dataset_tampered` when the snapshot's files changed (with any other "
        "problems in `errors`); 403 `not_allowed` for a user who is not an ML engineer of the project.",
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        snapshot = DatasetSnapshot.objects.filter(pk=data["snapshot"]).first()
        if snapshot is None or not (
            request.user.is_superuser or role_of(user=request.user, project=snapshot.project_id)
        ):
            # Another project's snapshot reads exactly like a missing one (no existence oracle).
            raise serializers.ValidationError({"snapshot": [f"No dataset snapshot {data['snapshot']}."]})
        reward_model = based_on = None
        input_errors = {}
        if data.get("reward_model_run") is not None:
            # Only the snapshot's project's runs can be named: another project's run reads like a missing one.
            reward_model = TrainingRun.objects.filter(
                pk=data["reward_model_run"], project_id=snapshot.project_id
            ).first()
            if reward_model is None:  # reported with every other problem of the run, in one answer
                input_errors["reward_model_run"] = f"No run {data['reward_model_run']}."
        if data.get("based_on") is not None:
            based_on = runs_visible_to(user=request.user).filter(pk=data["based_on"]).first()
        run = run_start(
            kind=data["kind"],
            snapshot=snapshot,
            config=data["config"],
            reward_model=reward_model,
            created_by=request.user,
            based_on=based_on,
            input_errors=input_errors,
        )
        return Response(RunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class RunDetailApi(APIView):
    @extend_schema(responses=RunOutputSerializer)
    def get(self, request, run_id: int):
        return Response(RunOutputSerializer(_visible_run(request, run_id)).data)


RunMetricsSerializer = inline_serializer(
    "RunMetrics",
    fields={
        "run": serializers.IntegerField(),
        "status": serializers.CharField(),
        "step": serializers.IntegerField(),
        "total": serializers.IntegerField(),
        "progress": serializers.FloatField(allow_null=True),
        "eta_seconds": serializers.FloatField(allow_null=True),
        "error": serializers.CharField(),
        "series": serializers.DictField(
            child=serializers.ListField(child=serializers.ListField(child=serializers.FloatField(allow_null=True))),
            help_text="Metric name -> [[step, value], ...] logged after `after`.",
        ),
        "last_step": serializers.IntegerField(allow_null=True, help_text="Ask again with after=last_step."),
        "more": serializers.BooleanField(help_text="More points are waiting: ask again at once."),
    },
)


class RunMetricsApi(APIView):
    """Metrics logged after a step, with the run's status and progress: what a live chart polls."""

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Only points at steps after this one.")],
        responses=RunMetricsSerializer,
    )
    def get(self, request, run_id: int):
        run = _visible_run(request, run_id)
        after = request.query_params.get("after")
        after_step = (
            serializers.IntegerField(min_value=-1, max_value=MAX_ID).run_validation(after)
            if after not in (None, "")
            else None
        )
        page = run_metrics_after(run=run, after=after_step)
        summary = RunOutputSerializer(run).data
        return Response(
            {
                "run": run.pk,
                "status": run.status,
                "step": run.step,
                "total": run.total_steps,
                "progress": summary["progress"],
                "eta_seconds": summary["eta_seconds"],
                "error": run.error,
                "series": page.series,
                "last_step": page.last_step,
                "more": page.more,
            }
        )


class RunCancelApi(APIView):
    @extend_schema(request=None, responses={200: RunOutputSerializer, 202: RunOutputSerializer})
    def post(self, request, run_id: int):
        run = run_cancel(run=_visible_run(request, run_id), user=request.user)
        code = status.HTTP_202_ACCEPTED if run.status == Status.RUNNING else status.HTTP_200_OK
        return Response(RunOutputSerializer(run).data, status=code)


class CheckpointOutputSerializer(serializers.ModelSerializer):
    deleted = serializers.SerializerMethodField(help_text="Its files were removed by the run's keep_checkpoints.")
    download_url = serializers.SerializerMethodField(help_text="A tar of its files, manifest.json first.")

    class Meta:
        model = Checkpoint
        fields = [
            "id",
            "run",
            "step",
            "final",
            "resumable",
            "metrics",
            "size_bytes",
            "deleted",
            "deleted_at",
            "created_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_deleted(self, checkpoint) -> bool:
        return checkpoint.deleted_at is not None

    def get_download_url(self, checkpoint) -> str | None:
        if checkpoint.deleted_at is not None:
            return None
        url = reverse("trainer:checkpoint-download", kwargs={"checkpoint_id": checkpoint.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class RunCheckpointsApi(APIView):
    """The checkpoints a run saved, by step: the intermediate ones as they were saved, the final one at its end."""

    @extend_schema(responses=CheckpointOutputSerializer(many=True))
    def get(self, request, run_id: int):
        run = _visible_run(request, run_id)
        return Response(
            CheckpointOutputSerializer(run_checkpoints(run=run), many=True, context={"request": request}).data
        )


class CheckpointDownloadApi(APIView):
    """One checkpoint as a streamed tar (manifest.json first, then every file), for the project's ML engineers.

    Every file's sha256 is checked against the manifest before the first byte: 409 checkpoint_tampered when a file
    changed, is missing or was added, 410 checkpoint_deleted when keep_checkpoints removed its files."""

    @extend_schema(
        responses={
            (200, "application/x-tar"): OpenApiResponse(OpenApiTypes.BINARY, description="tar archive"),
            403: RunStartErrorSerializer,
            404: RunStartErrorSerializer,
            409: RunStartErrorSerializer,
            410: RunStartErrorSerializer,
        }
    )
    def get(self, request, checkpoint_id: int):
        checkpoint = checkpoint_get(checkpoint_id=checkpoint_id)
        if checkpoint is None:
            raise Http404("No such checkpoint.")
        check(
            user=request.user,
            action=CHECKPOINT_DOWNLOAD_ACTION,
            project=checkpoint.run.project_id,
            what="download checkpoints",
        )
        checkpoint_verify(checkpoint=checkpoint)
        response = StreamingHttpResponse(checkpoint_archive(checkpoint=checkpoint), content_type="application/x-tar")
        response["Content-Disposition"] = f'attachment; filename="{checkpoint_archive_name(checkpoint=checkpoint)}"'
        return response


class BaseModelChoiceSerializer(serializers.Serializer):
    value = serializers.CharField(help_text="What to send as base_model: run:ID.")
    run = serializers.IntegerField()
    kind = serializers.CharField()
    label = serializers.CharField()
    snapshot = serializers.IntegerField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    evaluation_summary = serializers.DictField(allow_null=True)


class ProjectBaseModelsApi(APIView):
    """The runs a new run of the project may start from, as choices for base_model: its succeeded SFT, DPO, PPO and
    RLOO runs, newest first. DPO, PPO and RLOO also hold their policy close to that model (the reference)."""

    @extend_schema(responses=BaseModelChoiceSerializer(many=True))
    def get(self, request, project_id: int):
        project = project_for(user=request.user, action=Action.START_RUNS, project_id=project_id, what="start runs")
        rows = [
            {
                "value": f"run:{run.pk}",
                "run": run.pk,
                "kind": run.kind,
                "label": f"Run {run.pk} · {run.get_kind_display()} · snapshot {run.snapshot_id}",
                "snapshot": run.snapshot_id,
                "finished_at": run.finished_at,
                "evaluation_summary": run_evaluation_summary(run=run),
            }
            for run in base_model_runs_for(project=project)[:500]
        ]
        return Response(BaseModelChoiceSerializer(rows, many=True).data)
