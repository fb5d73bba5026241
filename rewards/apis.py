"""The lead's API: stored agreement snapshots per batch, per annotator, and the split-vote items; JSON or CSV."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.authz import Action, project_for
from core.csv import rows_to_csv
from core.ids import IdField
from rewards.selectors import project_agreement, snapshot_summary, stored_split_items

# Free-form JSON described as such (the rows' keys are documented on each view), so the schema names no guesses.
TABLE_OBJECT = OpenApiTypes.OBJECT
TABLE_ROWS = serializers.ListSerializer(child=serializers.JSONField())
FORMAT_PARAMETER = OpenApiParameter("format", str, enum=["json", "csv"], description="csv: the same table as CSV.")


# The columns of a table with no rows (a CSV always starts with its header; a spreadsheet or a script reading
# csv.DictReader then sees the columns it expects). With rows, the first row's keys give the columns.
ANNOTATOR_COLUMNS = [
    "batch_id",
    "batch",
    "annotator_id",
    "username",
    "judgments",
    "consensus_kappa",
    "consensus_agreement",
    "gold_accuracy",
    "gold_items",
    "left_share",
    "left_p_value",
    "longer_share",
    "longer_vs_consensus",
    "tie_rate",
    "both_bad_rate",
    "median_seconds",
    "too_fast",
    "flags",
]
SPLIT_ITEM_COLUMNS = [
    "item_pk",
    "item_id",
    "batch",
    "reason",
    "votes",
    "agreement",
    "margin",
    "model_a",
    "model_b",
    "computed_at",
]


class CsvRenderer(BaseRenderer):
    """A list of flat dicts as CSV, columns in the first row's order (or the response's csv_columns when there is
    no row: the header is always written); lists and dicts in a cell as key=value."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        columns = getattr((renderer_context or {}).get("response"), "csv_columns", None) or []
        if isinstance(data, dict):  # an error body
            data, columns = [{"detail": data.get("detail", data)}], ["detail"]
        if data:
            columns = list(data[0])
        # core.csv escapes text cells that a spreadsheet would run as a formula (justifications, names, ids).
        rows = ({key: _cell(value) for key, value in row.items()} for row in data)
        return rows_to_csv(rows, fieldnames=columns).encode()


def _cell(value: object) -> object:
    if isinstance(value, dict):
        return " ".join(f"{key}={item}" for key, item in value.items())
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return "" if value is None else value


class _LeadTableApi(APIView):
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CsvRenderer]

    def _as_csv(self, request) -> bool:
        return getattr(request.accepted_renderer, "format", None) == "csv"

    def _csv(self, rows: list[dict], filename: str, *, columns: list[str]) -> Response:
        response = Response(rows, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
        response.csv_columns = columns  # the header when there are no rows
        return response


def _codes(flags: list[dict]) -> str:
    return " ".join(f"{f['code']}:{f['level']}" for f in flags)


class ProjectAgreementApi(_LeadTableApi):
    """Each batch's latest stored snapshot. Never computes: a batch not yet snapshotted has null figures."""

    @extend_schema(parameters=[FORMAT_PARAMETER], responses=TABLE_OBJECT)
    def get(self, request, project_id: int):
        project = project_for(user=request.user, action=Action.VIEW_AGREEMENT, project_id=project_id)
        batches = [snapshot_summary(batch=b, snapshot=s) for b, s in project_agreement(project=project)]
        if not self._as_csv(request):
            return Response({"project_id": project.pk, "project": project.name, "batches": batches})
        columns = [
            "batch_id",
            "batch",
            "status",
            "criteria_version",
            "computed_at",
            "judgments",
            "items",
            "annotator_count",
            "cohen_kappa",
            "fleiss_kappa",
            "krippendorff_alpha",
            "agreement",
            "gold_accuracy",
            "gold_judgments",
        ]
        rows = [{**{c: b.get(c) for c in columns}, "flags": _codes(b.get("flags", []))} for b in batches]
        return self._csv(rows, f"agreement-project-{project.pk}.csv", columns=[*columns, "flags"])


class ProjectAnnotatorAgreementApi(_LeadTableApi):
    """Per batch and annotator: their statistics and flags from the batch's latest snapshot."""

    @extend_schema(parameters=[FORMAT_PARAMETER], responses=TABLE_ROWS)
    def get(self, request, project_id: int):
        project = project_for(user=request.user, action=Action.VIEW_AGREEMENT, project_id=project_id)
        rows = []
        for batch, snapshot in project_agreement(project=project):
            summary = snapshot_summary(batch=batch, snapshot=snapshot)
            for a in summary.get("annotators", []):
                row = {"batch_id": batch.pk, "batch": batch.name, **a}
                rows.append(row | {"flags": _codes(a["flags"])} if self._as_csv(request) else row)
        if self._as_csv(request):
            return self._csv(rows, f"annotators-project-{project.pk}.csv", columns=ANNOTATOR_COLUMNS)
        return Response(rows)


class SplitItemsApi(_LeadTableApi):
    """Items whose votes split (no strict majority, or agreement under the project's minimum), with their votes
    and the models that wrote each response (leads only), as each batch's latest agreement snapshot found them
    (stored with the snapshot: never recounted on a request). ?batch=ID narrows to one batch."""

    class FilterSerializer(serializers.Serializer):
        batch = IdField(required=False, help_text="Only this batch of the project.")

    @extend_schema(
        parameters=[FORMAT_PARAMETER, FilterSerializer],
        responses=TABLE_ROWS,
    )
    def get(self, request, project_id: int):
        project = project_for(user=request.user, action=Action.VIEW_AGREEMENT, project_id=project_id)
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        batches = project.batches.all()
        if "batch" in query.validated_data:
            batches = batches.filter(pk=query.validated_data["batch"])
            if not batches.exists():
                raise NotFound("No such batch in this project.")
        rows = stored_split_items(batch_ids=batches.values_list("pk", flat=True))
        if self._as_csv(request):
            return self._csv(rows, f"split-items-project-{project.pk}.csv", columns=SPLIT_ITEM_COLUMNS)
        return Response(rows)
