"""Evaluation sets and generation runs API, for a project's leads and ML engineers: import a set (a JSONL file,
multipart or as the request body), list and read sets (prompts as JSON or ?format=csv), start a generation run of a
model on a set, list generation runs. Views parse and delegate to evaluation's services and selectors."""

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.authz import check, project_for
from core.parsers import TandemJSONParser
from evaluation.models import EvalSet, Sampled
from evaluation.selectors import (
    EVAL_SET_IMPORT,
    EVAL_SET_VIEW,
    GENERATION_START,
    eval_set_get,
    eval_set_list,
    eval_set_prompts,
    generation_runs_for,
)
from evaluation.services.eval_sets import MAX_FILE_BYTES, MAX_NAME, eval_set_import
from evaluation.services.generations import generation_start
from rewards.apis import FORMAT_PARAMETER, CsvRenderer

PROMPT_COLUMNS = ["id", "prompt", "messages", "stratum", "category", "reference", "group"]
GENERATION_COLUMNS = [
    "id",
    "run",
    "status",
    "eval_set",
    "eval_set_name",
    "eval_set_version",
    "model_key",
    "label",
    "overlap_allowed",
    "overlap_ids",
    "created_by",
    "created_at",
]

ErrorSerializer = inline_serializer(
    name="EvaluationError",
    fields={
        "code": serializers.CharField(),
        "detail": serializers.CharField(),
        "errors": serializers.ListField(
            child=serializers.DictField(),
            required=False,
            help_text='invalid_eval_set: every bad line, {"line": n, "reason"} ({"line": null}: the whole file).',
        ),
        "ids": serializers.ListField(
            child=serializers.CharField(), required=False, help_text="eval_set_overlap: the overlapping prompt ids."
        ),
    },
)


class JsonLinesParser(BaseParser):
    """A JSONL file as the request body (`curl --data-binary @set.jsonl -H 'Content-Type: application/x-ndjson'`):
    read up to the set's size limit, handed to the import service as the file."""

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None):
        return {"file": stream.read(MAX_FILE_BYTES + 1) if stream is not None else b""}


class JsonlParser(JsonLinesParser):
    media_type = "application/jsonl"


class EvalSetOutputSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = EvalSet
        fields = [
            "id",
            "project",
            "name",
            "version",
            "prompt_count",
            "strata",
            "sha256",
            "path",
            "created_by",
            "created_at",
            "url",
        ]

    def get_url(self, eval_set) -> str:
        return f"/api/v1/eval-sets/{eval_set.pk}/"


class SampledOutputSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="run.status", read_only=True)
    eval_set_name = serializers.CharField(source="eval_set.name", read_only=True)
    eval_set_version = serializers.IntegerField(source="eval_set.version", read_only=True)
    created_by = serializers.SerializerMethodField()
    config = serializers.JSONField(source="run.config", read_only=True)
    run_url = serializers.SerializerMethodField()

    class Meta:
        model = Sampled
        fields = [
            "id",
            "run",
            "status",
            "eval_set",
            "eval_set_name",
            "eval_set_version",
            "model_key",
            "label",
            "overlap_allowed",
            "overlap_ids",
            "config",
            "created_by",
            "created_at",
            "run_url",
        ]

    def get_created_by(self, sampled) -> str | None:
        user = sampled.run.created_by
        return user.get_username() if user else None

    def get_run_url(self, sampled) -> str:
        return f"/api/v1/runs/{sampled.run_id}/"


def _prompt_rows(eval_set: EvalSet) -> list[dict]:
    return [
        {
            "id": p.external_id,
            "prompt": p.prompt,
            "messages": p.messages,
            "stratum": p.stratum,
            "category": p.category,
            "reference": p.reference,
            "group": p.group,
        }
        for p in eval_set_prompts(eval_set=eval_set)
    ]


def _set_for(request, eval_set_id: int, *, action, what: str) -> EvalSet:
    eval_set = eval_set_get(eval_set_id=eval_set_id)
    if eval_set is None:
        raise Http404("No such evaluation set.")
    check(user=request.user, action=action, project=eval_set.project_id, what=what)
    return eval_set


class ProjectEvalSetsApi(APIView):
    """GET: the project's evaluation sets, newest version first per name. POST: import a JSONL file as the next
    version of the set `name` (multipart `file` and `name`, or the file as the body with ?name=); the whole file
    or nothing: 400 invalid_eval_set lists every bad line."""

    throttle_scope = "import"  # its POST: TANDEM_THROTTLE_HEAVY per user (core/throttling.py)
    parser_classes = [MultiPartParser, FormParser, JsonLinesParser, JsonlParser]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=MAX_NAME, help_text="The set's name; a new version if it exists.")
        file = serializers.FileField(help_text="JSONL (or .jsonl.gz): {id, prompt | messages, stratum, category, ...}")

    @extend_schema(responses=EvalSetOutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = project_for(user=request.user, action=EVAL_SET_VIEW, project_id=project_id, what="see its sets")
        return Response(EvalSetOutputSerializer(eval_set_list(project=project), many=True).data)

    @extend_schema(
        request={"multipart/form-data": InputSerializer, "application/x-ndjson": OpenApiTypes.BINARY},
        parameters=[OpenApiParameter("name", str, description="The set's name, when the body is the file.")],
        responses={201: EvalSetOutputSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def post(self, request, project_id: int):
        project = project_for(
            user=request.user, action=EVAL_SET_IMPORT, project_id=project_id, what="import evaluation sets"
        )
        body = request.data.get("file")
        if isinstance(body, bytes):  # the file as the body: the name is in the query string
            name = serializers.CharField(max_length=MAX_NAME).run_validation(request.query_params.get("name"))
            upload, filename = body, ""
        else:
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            name, upload = serializer.validated_data["name"], serializer.validated_data["file"]
            filename = upload.name or ""
        eval_set = eval_set_import(project=project, name=name, file=upload, created_by=request.user, filename=filename)
        return Response(EvalSetOutputSerializer(eval_set).data, status=status.HTTP_201_CREATED)


class EvalSetDetailApi(APIView):
    """One evaluation set with its prompts in file order; ?format=csv: the prompts as CSV."""

    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CsvRenderer]

    @extend_schema(parameters=[FORMAT_PARAMETER], responses={200: OpenApiTypes.OBJECT, 404: ErrorSerializer})
    def get(self, request, eval_set_id: int):
        eval_set = _set_for(request, eval_set_id, action=EVAL_SET_VIEW, what="see evaluation sets")
        rows = _prompt_rows(eval_set)
        if getattr(request.accepted_renderer, "format", None) == "csv":
            filename = f"eval-set-{eval_set.pk}-v{eval_set.version}.csv"  # the name is free text: not in a header
            response = Response(rows, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
            response.csv_columns = PROMPT_COLUMNS
            return response
        return Response({**EvalSetOutputSerializer(eval_set).data, "prompts": rows})


class EvalSetGenerationsApi(APIView):
    """GET: the generation runs on this set. POST: sample a model on it as a run of kind generate: 201 with the
    generation run; 400 invalid_model / run_unfinished / invalid_config; 409 eval_set_overlap (with `ids`) unless
    allow_overlap, eval_set_tampered, checkpoint_tampered."""

    throttle_scope = "run"  # its POST: TANDEM_THROTTLE_HEAVY per user (core/throttling.py)
    parser_classes = [TandemJSONParser, MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        model = serializers.CharField(
            max_length=1024, help_text="checkpoint:ID, run:ID (a finished run's final checkpoint) or a base folder."
        )
        config = serializers.DictField(
            required=False, default=dict, help_text="Generate settings: n, temperature, top_p, max_new_tokens, ..."
        )
        allow_overlap = serializers.BooleanField(
            default=False, help_text="Generate even if prompts appear in the model's training data (recorded)."
        )

    @extend_schema(responses=SampledOutputSerializer(many=True))
    def get(self, request, eval_set_id: int):
        eval_set = _set_for(request, eval_set_id, action=EVAL_SET_VIEW, what="see generation runs")
        sampled = generation_runs_for(project=eval_set.project_id, eval_set=eval_set)
        return Response(SampledOutputSerializer(sampled, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: SampledOutputSerializer, 400: ErrorSerializer, 403: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request, eval_set_id: int):
        eval_set = _set_for(request, eval_set_id, action=GENERATION_START, what="start generation runs")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        sampled = generation_start(
            eval_set=eval_set,
            model=data["model"],
            config=data["config"],
            created_by=request.user,
            allow_overlap=data["allow_overlap"],
        )
        return Response(SampledOutputSerializer(sampled).data, status=status.HTTP_201_CREATED)


class ProjectGenerationRunsApi(APIView):
    """The project's generation runs on its evaluation sets, newest first; ?format=csv for a table."""

    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CsvRenderer]

    @extend_schema(parameters=[FORMAT_PARAMETER], responses=SampledOutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = project_for(
            user=request.user, action=EVAL_SET_VIEW, project_id=project_id, what="see generation runs"
        )
        rows = SampledOutputSerializer(generation_runs_for(project=project), many=True).data
        if getattr(request.accepted_renderer, "format", None) == "csv":
            flat = [{key: row[key] for key in GENERATION_COLUMNS} for row in rows]
            filename = f"generation-runs-project-{project.pk}.csv"
            response = Response(flat, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
            response.csv_columns = GENERATION_COLUMNS
            return response
        return Response(rows)
