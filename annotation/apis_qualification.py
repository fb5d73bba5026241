"""The lead's qualification API: every attempt of a project (JSON or CSV), and another attempt for an annotator."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import Membership
from annotation.selectors_qualification import QUALIFICATION_COLUMNS, attempt_row, qualification_attempts
from annotation.services.qualification import qualification_reset
from core.authz import Action, project_for
from core.csv import rows_to_csv


class _CsvRenderer(BaseRenderer):
    """The rows as CSV (core.csv escapes text a spreadsheet would run as a formula), header always written."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, dict):  # an error body
            return rows_to_csv([{"detail": data.get("detail", data)}], fieldnames=["detail"]).encode()
        rows = ({key: "" if value is None else value for key, value in row.items()} for row in data)
        return rows_to_csv(rows, fieldnames=QUALIFICATION_COLUMNS).encode()


class QualificationListApi(APIView):
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, _CsvRenderer]

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["json", "csv"], description="csv: the same table as CSV.")],
        responses={200: serializers.ListSerializer(child=serializers.JSONField())},
        description="Every qualification attempt of the project, newest first: "
        f"{', '.join(QUALIFICATION_COLUMNS)}. state is in_progress, passed, failed or reset.",
    )
    def get(self, request, project_id: int):
        project = project_for(
            user=request.user, action=Action.VIEW_AGREEMENT, project_id=project_id, what="see qualification results"
        )
        rows = [attempt_row(attempt) for attempt in qualification_attempts(project=project)]
        if getattr(request.accepted_renderer, "format", None) == "csv":
            filename = f"qualification-project-{project.pk}.csv"
            return Response(rows, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
        return Response(rows)


class QualificationResetApi(APIView):
    OutputSerializer = inline_serializer(
        name="QualificationReset",
        fields={"annotator_id": serializers.IntegerField(), "reset": serializers.IntegerField()},
    )

    @extend_schema(
        request=None,
        responses={200: OutputSerializer, 404: OpenApiTypes.OBJECT},
        description="Allow the annotator another qualification attempt: their attempts so far stay on record, marked "
        "reset, and their next item starts a new attempt on qualification items they have not seen. reset: how "
        "many attempts were reset (0 when none counted).",
    )
    def post(self, request, project_id: int, user_id: int):
        project = project_for(
            user=request.user, action=Action.MANAGE_MEMBERS, project_id=project_id, what="reset qualifications"
        )
        if not Membership.objects.filter(project=project, user_id=user_id).exists():
            raise NotFound("No such member of this project.")
        reset = qualification_reset(project=project, annotator_id=user_id, by=request.user)
        return Response({"annotator_id": user_id, "reset": reset})
