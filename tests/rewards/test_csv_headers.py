"""Every CSV the lead downloads starts with its header, even when the table has no row (it used to be a 0-byte
file), and text cells are still escaped against spreadsheet formulas."""

import csv
import io

import pytest

from rewards.apis import ANNOTATOR_COLUMNS, SPLIT_ITEM_COLUMNS
from rewards.services.snapshots import snapshot_compute
from tests.factories import BatchFactory
from tests.rewards.judging import judge_items

AGREEMENT_COLUMNS = [
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
    "flags",
]


def header_and_rows(response) -> tuple[list[str], list[dict]]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = response.content.decode()
    assert text.endswith("\r\n")
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


@pytest.mark.parametrize(
    ("path", "columns"),
    [
        ("agreement/", AGREEMENT_COLUMNS),
        ("agreement/annotators/", ANNOTATOR_COLUMNS),
        ("split-items/", SPLIT_ITEM_COLUMNS),
    ],
)
def test_a_table_with_no_rows_is_still_a_csv_with_its_header(path, columns, project, lead_client):
    response = lead_client.get(f"/api/v1/projects/{project.pk}/{path}?format=csv")
    assert header_and_rows(response) == (columns, [])


def test_with_rows_the_header_is_the_same_and_formulas_stay_text(project, lead_client):
    batch = BatchFactory(project=project, name="=HYPERLINK(1)")
    judge_items(batch, {"ann1": ["a", "b", "a"], "ann2": ["a", "b", "b"], "ann3": ["a", "b", "tie"]})
    snapshot_compute(batch=batch)
    agreement = lead_client.get(f"/api/v1/projects/{project.pk}/agreement/?format=csv")
    header, rows = header_and_rows(agreement)
    assert header == AGREEMENT_COLUMNS and rows[0]["batch"] == "'=HYPERLINK(1)"
    header, rows = header_and_rows(lead_client.get(f"/api/v1/projects/{project.pk}/agreement/annotators/?format=csv"))
    assert header == ANNOTATOR_COLUMNS and len(rows) == 3
    header, rows = header_and_rows(lead_client.get(f"/api/v1/projects/{project.pk}/split-items/?format=csv"))
    assert header == SPLIT_ITEM_COLUMNS and [r["reason"] for r in rows] == ["split"]
