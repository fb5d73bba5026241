"""Streamed downloads shared by the API and the admin, free of DRF so that the admin (loaded by every process at
django.setup()) does not pull the API stack in."""

import json

from django.http import StreamingHttpResponse

from annotation.models import Batch
from core.csv import iter_csv
from rewards.selectors_drilldown import raw_judgment_columns, raw_judgment_csv_row, raw_judgments


def raw_judgments_response(*, batch: Batch, as_csv: bool) -> StreamingHttpResponse:
    """The streamed download (the API's and the admin's Batch action's)."""
    rows = raw_judgments(batch=batch)
    if as_csv:
        body = iter_csv(map(raw_judgment_csv_row, rows), fieldnames=raw_judgment_columns(batch=batch))
        content_type, suffix = "text/csv; charset=utf-8", "csv"
    else:
        body = (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        content_type, suffix = "application/jsonl; charset=utf-8", "jsonl"
    response = StreamingHttpResponse(body, content_type=content_type)
    filename = f"judgments-batch-{batch.pk}.{suffix}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
