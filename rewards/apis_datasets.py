"""Dataset snapshot API for a project's leads and ML engineers: make one (a job: rewards.jobs), list them, read one,
download its files (each checked against its stored sha256 first). Views parse and delegate to rewards' services."""

from django.http import FileResponse, Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.apis import JobOutputSerializer, job_accepted
from core.authz import Action, check, project_for
from core.ids import MAX_ID, IdListField
from rewards.errors import DatasetError
from rewards.jobs import dataset_job_submit
from rewards.models import DatasetSnapshot
from rewards.selectors import DATASET_FILE_NAMES, dataset_files, dataset_get, dataset_list
from rewards.services.datasets import VALIDATION_FRACTION_MAX, dataset_verify

ErrorSerializer = inline_serializer(
    name="DatasetError", fields={"code": serializers.CharField(), "detail": serializers.CharField()}
)


class DatasetOutputSerializer(serializers.ModelSerializer):
    batches = serializers.SerializerMethodField()
    counts = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    created_by = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()

    class Meta:
        model = DatasetSnapshot
        fields = [
            "id",
            "project",
            "kind",
            "batches",
            "sources",
            "criteria_versions",
            "weighting",
            "validation_fraction",
            "seed",
            "prompt_format",
            "counts",
            "excluded_reasons",
            "sha256",
            "directory",
            "files",
            "created_by",
            "created_at",
        ]

    def get_batches(self, snapshot) -> list[dict]:
        # Labelled sources are batches too (kind "labelled"); `sources` lists them with their files.
        return [
            {"id": b.pk, "name": b.name, "kind": b.kind} for b in sorted(snapshot.batches.all(), key=lambda b: b.pk)
        ]

    def get_created_by(self, snapshot) -> str | None:
        return snapshot.created_by.get_username() if snapshot.created_by else None

    def get_files(self, snapshot) -> dict[str, str]:
        request = self.context.get("request")
        urls = {
            name: reverse("rewards:dataset-file", kwargs={"snapshot_id": snapshot.pk, "name": name})
            for name in DATASET_FILE_NAMES
        }
        return {name: request.build_absolute_uri(url) if request else url for name, url in urls.items()}


class ProjectDatasetsApi(APIView):
    throttle_scope = "snapshot"  # its POST: TANDEM_THROTTLE_HEAVY per user (core/throttling.py)

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(
            choices=DatasetSnapshot.Kind.choices,
            default=DatasetSnapshot.Kind.PREFERENCE,
            help_text="preference: pairs from human-judged batches and labelled sources; sft: accepted demonstrations "
            "of demonstration batches and labelled sources of demonstrations, in TRL's conversational format.",
        )
        batches = IdListField(  # at most TANDEM_MAX_IDS_PER_REQUEST ids, each a bigint
            required=False,
            help_text="Ids of closed batches of this project (kind sft: demonstration batches); all of them when left "
            "out and no source is named, none when sources are named.",
        )
        sources = serializers.ListField(
            child=serializers.CharField(max_length=200),
            required=False,
            max_length=100,
            help_text="Names of this project's labelled sources (batches of kind labelled): preference formats for "
            "kind preference, demonstrations for kind sft. Every row's `source` is `human` or the source's name.",
        )
        weighting = serializers.ChoiceField(choices=DatasetSnapshot.Weighting.choices, default="vote")
        validation_fraction = serializers.FloatField(min_value=0.0, max_value=VALIDATION_FRACTION_MAX, default=0.1)
        seed = serializers.IntegerField(min_value=0, max_value=MAX_ID, default=0)
        include_evaluation = serializers.BooleanField(
            default=False,
            help_text="Also take evaluation batches (checkpoints judged against each other): left out of 'all closed "
            "batches' and refused when named unless this is true. The manifest then lists them.",
        )

    @extend_schema(responses=DatasetOutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = project_for(user=request.user, action=Action.VIEW_DATASETS, project_id=project_id)
        snapshots = dataset_list(project=project)
        return Response(DatasetOutputSerializer(snapshots, many=True, context={"request": request}).data)

    @extend_schema(
        request=InputSerializer,
        responses={202: JobOutputSerializer, 400: ErrorSerializer, 403: ErrorSerializer, 409: ErrorSerializer},
        description="Queues the snapshot as a job: 202 with the job (GET its `url`; the snapshot is its result). "
        "Unknown or open batches are refused at once (400 unknown_batch, 409 batch_open), and so are evaluation batches "
        "named without include_evaluation (400 evaluation_batch), labelled sources named as batches (400 "
        "labelled_batch), names that are not labelled sources (400 unknown_source) or of the wrong format (400 "
        "source_format), and for kind sft batches that are not demonstration batches (400 not_demonstration_batch); "
        "no pairs (no accepted demonstrations) fails the job.",
    )
    def post(self, request, project_id: int):
        project = project_for(user=request.user, action=Action.MAKE_DATASET, project_id=project_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["kind"] == DatasetSnapshot.Kind.SFT and (
            data["weighting"] != DatasetSnapshot.Weighting.VOTE or data["include_evaluation"]
        ):
            raise DatasetError("An SFT snapshot takes accepted demonstrations: no weighting, no evaluation batches.")
        job = dataset_job_submit(
            project=project,
            batch_ids=data.get("batches"),
            weighting=data["weighting"],
            validation_fraction=data["validation_fraction"],
            seed=data["seed"],
            created_by=request.user,
            include_evaluation=data["include_evaluation"],
            sources=data.get("sources"),
            kind=data["kind"],
        )
        return job_accepted(job, request)


def _snapshot_for(request, snapshot_id: int) -> DatasetSnapshot:
    snapshot = dataset_get(snapshot_id=snapshot_id)
    if snapshot is None:
        raise Http404("No such dataset snapshot.")
    check(user=request.user, action=Action.VIEW_DATASETS, project=snapshot.project_id, what="see datasets")
    return snapshot


class DatasetDetailApi(APIView):
    @extend_schema(responses={200: DatasetOutputSerializer, 403: ErrorSerializer, 404: ErrorSerializer})
    def get(self, request, snapshot_id: int):
        snapshot = _snapshot_for(request, snapshot_id)
        return Response(DatasetOutputSerializer(snapshot, context={"request": request}).data)


class DatasetFileApi(APIView):
    """One file of the snapshot, streamed, after its sha256 was checked: 409 dataset_tampered if it changed."""

    @extend_schema(
        parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH, enum=list(DATASET_FILE_NAMES))],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="JSONL or JSON"),
            403: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
    )
    def get(self, request, snapshot_id: int, name: str):
        if name not in DATASET_FILE_NAMES:
            raise Http404("No such file: use train, validation, excluded or manifest.")
        snapshot = _snapshot_for(request, snapshot_id)
        dataset_verify(snapshot=snapshot, names=[name])
        path = dataset_files(snapshot=snapshot)[name]
        content_type = "application/json" if path.suffix == ".json" else "application/jsonl"
        filename = f"dataset-{snapshot.pk}-{path.name}"
        return FileResponse(open(path, "rb"), as_attachment=True, filename=filename, content_type=content_type)
