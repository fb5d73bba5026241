"""The lead's drill-down API: one annotator's judgments in a project, paged and filtered, as JSON or CSV; and a
batch's raw judgments, streamed as JSONL or CSV."""

from django.core.paginator import EmptyPage, Paginator
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import Batch
from core.authz import Action, check, project_for
from core.ids import IdField
from rewards.apis import FORMAT_PARAMETER, TABLE_OBJECT, CsvRenderer, _LeadTableApi
from rewards.downloads import raw_judgments_response
from rewards.selectors_drilldown import (
    DRILLDOWN_COLUMNS,
    DrilldownFilters,
    annotator_judged_in,
    annotator_judgments,
    drilldown_rows,
)

DRILLDOWN_PAGE_SIZE = 50


class DrilldownFilterSerializer(serializers.Serializer):
    batch = IdField(required=False, help_text="Only this batch of the project.")
    gold_missed = serializers.BooleanField(required=False, default=False, help_text="1: only gold items missed.")
    with_justification = serializers.BooleanField(
        required=False, default=False, help_text="1: only judgments with a justification."
    )
    page = serializers.IntegerField(required=False, min_value=1, max_value=10**9, default=1)


def drilldown_filters(*, project, data: dict) -> DrilldownFilters:
    """The validated query as filters; a batch of another project is a 404 like a missing one."""
    batch_id = data.get("batch")
    if batch_id is not None and not project.batches.filter(pk=batch_id).exists():
        raise Http404("No such batch in this project.")
    return DrilldownFilters(
        batch_id=batch_id, gold_missed=data["gold_missed"], with_justification=data["with_justification"]
    )


class AnnotatorJudgmentsApi(_LeadTableApi):
    """An annotator's votes in the project (leads only: they show who chose what, with the model names), newest
    first, with each item's majority and gold answer. JSON pages of 50; ?format=csv: every matching row."""

    @extend_schema(parameters=[FORMAT_PARAMETER, DrilldownFilterSerializer], responses=TABLE_OBJECT)
    def get(self, request, project_id: int, user_id: int):
        project = project_for(
            user=request.user, action=Action.VIEW_JUDGMENTS, project_id=project_id, what="see annotators' votes"
        )
        if not annotator_judged_in(project=project, user_id=user_id):
            raise NotFound("This user has no judgment in this project.")
        query = DrilldownFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            filters = drilldown_filters(project=project, data=query.validated_data)
        except Http404 as exc:
            raise NotFound(str(exc)) from exc
        judgments = annotator_judgments(project=project, user_id=user_id, filters=filters)
        if self._as_csv(request):
            rows = drilldown_rows(judgments=list(judgments))
            filename = f"judgments-project-{project.pk}-user-{user_id}.csv"
            return self._csv(rows, filename, columns=DRILLDOWN_COLUMNS)
        paginator = Paginator(judgments, DRILLDOWN_PAGE_SIZE)
        try:
            page = paginator.page(query.validated_data["page"])
        except EmptyPage as exc:
            if query.validated_data["page"] != 1:
                raise NotFound("No such page.") from exc
            page = paginator.page(1) if paginator.count else None
        return Response(
            {
                "count": paginator.count,
                "page": page.number if page else 1,
                "pages": paginator.num_pages if paginator.count else 0,
                "results": drilldown_rows(judgments=list(page.object_list)) if page else [],
            }
        )


class _JsonlRenderer(JSONRenderer):
    """?format=jsonl names the default download explicitly; an error body is one JSON line."""

    media_type = "application/jsonl"
    format = "jsonl"


class BatchJudgmentsApi(APIView):
    """A batch's raw judgments, streamed, one per line (JSONL, the default) or row (?format=csv, the criteria as
    `dimension:<key>` columns, header always written): item, annotator pseudonym (the same in every batch of the
    project, unrelated across projects), canonical choice, per-criterion answers, justification, seconds, gold
    result, criteria version, revised. For those who make datasets (leads and ML engineers)."""

    renderer_classes = [JSONRenderer, _JsonlRenderer, CsvRenderer]

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["jsonl", "csv"], description="csv: the same rows as CSV.")],
        responses={(200, "application/jsonl"): OpenApiResponse(OpenApiTypes.BINARY, description="JSONL or CSV")},
    )
    def get(self, request, batch_id: int):
        batch = Batch.objects.select_related("criteria_version").filter(pk=batch_id).first()
        if batch is None:
            raise Http404("Not found.")
        check(user=request.user, action=Action.MAKE_DATASET, project=batch.project_id, what="download raw judgments")
        return raw_judgments_response(batch=batch, as_csv=getattr(request.accepted_renderer, "format", "") == "csv")
