"""A batch's raw judgments out (issue 15, item 6): streamed JSONL and CSV, rows held against the database, the
annotator pseudonym stable across a project's batches and different across projects, the CSV header always there,
text cells escaped for spreadsheets; who may download; the admin's Batch action."""

import csv
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import Judgment
from annotation.services import member_add
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory
from tests.rewards.judging import judge

pytestmark = pytest.mark.django_db

DIMENSIONS = ["harmlessness", "honesty", "helpfulness"]  # the default criteria, by priority
FORMULA = '=HYPERLINK("http://evil")'


@pytest.fixture
def judged(project):
    """Two batches of the project judged by zed and amy (one gold item, a revised judgment, per-criterion answers),
    and a batch of another project judged by zed too."""
    first, second = BatchFactory(project=project, name="week 1"), BatchFactory(project=project, name="week 2")
    items = [ItemFactory(batch=first, external_id=f"w1-{n}", gold="a" if n == 0 else "") for n in range(3)]
    for n, item in enumerate(items):
        judge(item, "zed", "b" if n == 0 else "a", seconds=4.5 + n)
        judge(item, "amy", ["a", "tie", "both_bad"][n], seconds=12.0)
    Judgment.objects.filter(annotator__username="zed", item=items[1]).update(
        dimensions={"harmlessness": "a", "honesty": "tie", "helpfulness": "na"},
        justification=FORMULA,
        revised_at=timezone.now(),
    )
    Judgment.objects.filter(annotator__username="amy", item=items[2]).update(
        justification="Both are wrong, ünïcode kept."
    )
    judge(ItemFactory(batch=second, external_id=""), "zed", "a")
    elsewhere = ProjectFactory(name="Elsewhere")
    judge(ItemFactory(batch=BatchFactory(project=elsewhere, name="theirs")), "zed", "b")
    return {"first": first, "second": second, "elsewhere": elsewhere}


def url(batch, fmt: str = "") -> str:
    return reverse("rewards:batch-judgments", args=[batch.pk]) + (f"?format={fmt}" if fmt else "")


def streamed(response) -> str:
    assert response.status_code == 200, response.content if not response.streaming else ""
    assert response.streaming
    return b"".join(response.streaming_content).decode("utf-8")


def jsonl(client, batch) -> list[dict]:
    response = client.get(url(batch))
    assert response["Content-Type"].startswith("application/jsonl")
    assert f'filename="judgments-batch-{batch.pk}.jsonl"' in response["Content-Disposition"]
    return [json.loads(line) for line in streamed(response).splitlines()]


def test_jsonl_rows_are_the_judgments_of_the_batch(lead_client, judged):
    rows = jsonl(lead_client, judged["first"])
    judgments = Judgment.objects.filter(batch=judged["first"]).select_related("item").order_by("pk")
    assert [row["judgment_id"] for row in rows] == [j.pk for j in judgments]
    for row, j in zip(rows, judgments, strict=True):
        assert row == {
            "judgment_id": j.pk,
            "item_id": j.item.external_id,
            "annotator": row["annotator"],
            "choice": j.choice,
            "dimensions": j.dimensions,
            "justification": j.justification,
            "seconds": j.seconds,
            "too_fast": j.too_fast,
            "is_gold": j.is_gold,
            "gold_correct": j.gold_correct if j.is_gold else None,
            "criteria_version": judged["first"].criteria_version.number,
            "revised": j.revised_at is not None,
            "created_at": j.created_at.isoformat(),
        }
    gold = [row for row in rows if row["is_gold"]]
    assert sorted((r["choice"], r["gold_correct"]) for r in gold) == [("a", True), ("b", False)]
    assert sum(row["revised"] for row in rows) == 1
    assert {row["choice"] for row in rows} == {"a", "b", "tie", "both_bad"}  # canonical, never left / right


def test_the_pseudonym_is_stable_in_a_project_and_differs_across_projects(lead_client, judged):
    first = jsonl(lead_client, judged["first"])
    by_item = {(row["item_id"], row["seconds"]): row["annotator"] for row in first}
    zed, amy = by_item[("w1-0", 4.5)], by_item[("w1-0", 12.0)]
    assert zed != amy
    assert {row["annotator"] for row in first} == {zed, amy}
    assert all(name.startswith("ann-") and len(name) == 16 for name in (zed, amy))
    assert "zed" not in json.dumps(first) and "amy" not in json.dumps(first)
    second = jsonl(lead_client, judged["second"])
    assert [row["annotator"] for row in second] == [zed]
    assert second[0]["item_id"] == str(Judgment.objects.get(batch=judged["second"]).item_id)  # no external id
    # The same person in another project gets another name (downloaded by a superuser, who may everywhere).
    root = APIClient()
    root.force_authenticate(get_user_model().objects.create_superuser("root", "r@example.com", "pw"))
    theirs = jsonl(root, judged["elsewhere"].batches.get())
    assert len(theirs) == 1 and theirs[0]["annotator"] not in (zed, amy)


def test_csv_rows_and_header_against_the_database(lead_client, judged):
    response = lead_client.get(url(judged["first"], "csv"))
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="judgments-batch-{judged["first"].pk}.csv"' in response["Content-Disposition"]
    text = streamed(response)
    header = text.splitlines()[0]
    assert header == (
        "judgment_id,item_id,annotator,choice,"
        + ",".join(f"dimension:{key}" for key in DIMENSIONS)
        + ",justification,seconds,too_fast,is_gold,gold_correct,criteria_version,revised,created_at"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    judgments = {j.pk: j for j in Judgment.objects.filter(batch=judged["first"]).select_related("item")}
    assert sorted(int(row["judgment_id"]) for row in rows) == sorted(judgments)
    pseudonyms = {row["judgment_id"]: row["annotator"] for row in jsonl(lead_client, judged["first"])}
    for row in rows:
        j = judgments[int(row["judgment_id"])]
        assert row["item_id"] == j.item.external_id
        assert row["annotator"] == pseudonyms[j.pk]
        assert row["choice"] == j.choice
        assert float(row["seconds"]) == j.seconds
        assert row["is_gold"] == str(j.is_gold)
        assert row["gold_correct"] == ("" if not j.is_gold else str(j.gold_correct))
        assert row["criteria_version"] == str(judged["first"].criteria_version.number)
        assert row["revised"] == str(j.revised_at is not None)
        for key in DIMENSIONS:
            assert row[f"dimension:{key}"] == j.dimensions.get(key, "")
        # Text a spreadsheet would run as a formula is escaped (core.csv); the rest is as written.
        want = "'" + j.justification if j.justification.startswith("=") else j.justification
        assert row["justification"] == want
    assert any(row["justification"] == "'" + FORMULA for row in rows)
    assert any(row["justification"] == "Both are wrong, ünïcode kept." for row in rows)


def test_an_empty_batch_still_has_its_header(lead_client, project):
    batch = BatchFactory(project=project, name="empty")
    text = streamed(lead_client.get(url(batch, "csv")))
    assert text.splitlines() == [
        "judgment_id,item_id,annotator,choice,dimension:harmlessness,dimension:honesty,dimension:helpfulness,"
        "justification,seconds,too_fast,is_gold,gold_correct,criteria_version,revised,created_at"
    ]
    assert streamed(lead_client.get(url(batch))) == ""
    assert streamed(lead_client.get(url(batch, "jsonl"))) == ""


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("lead_client", 200),
        ("ml_engineer_client", 200),
        ("annotator_client", 403),
        ("stranger_client", 404),
        ("anon_client", 401),
    ],
)
def test_leads_and_ml_engineers_download(request, who, status, judged):
    client = request.getfixturevalue(who)
    for fmt in ("", "csv"):
        response = client.get(url(judged["first"], fmt))
        assert response.status_code == status
        if status != 200:
            body = response.content.decode()
            assert "zed" not in body and FORMULA not in body


def test_a_missing_batch_reads_like_another_projects(lead_client, judged):
    theirs = lead_client.get(url(judged["elsewhere"].batches.get()))
    missing = lead_client.get("/api/v1/batches/999999999/judgments/")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == {"code": "not_found", "detail": "Not found."}


def test_the_admin_batch_action_downloads_the_csv(client, lead, project, judged):
    client.force_login(lead)
    changelist = reverse("admin:annotation_batch_changelist")
    response = client.post(changelist, {"action": "download_raw_judgments", "_selected_action": [judged["first"].pk]})
    text = streamed(response)
    assert response["Content-Type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(text)))) == 6
    two = client.post(
        changelist,
        {"action": "download_raw_judgments", "_selected_action": [judged["first"].pk, judged["second"].pk]},
        follow=True,
    )
    assert "Select one batch" in two.content.decode()


def test_the_admin_action_is_refused_outside_the_users_projects(client, project, judged):
    """A lead of the other project only (who is staff) cannot download this project's batch."""
    outsider = UserFactory(username="lead-elsewhere")
    member_add(project=judged["elsewhere"], username="lead-elsewhere", role="lead")
    outsider.refresh_from_db()
    client.force_login(outsider)
    response = client.post(
        reverse("admin:annotation_batch_changelist"),
        {"action": "download_raw_judgments", "_selected_action": [judged["first"].pk]},
    )
    assert not getattr(response, "streaming", False)
