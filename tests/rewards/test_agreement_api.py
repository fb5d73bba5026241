"""The lead's agreement API: stored snapshots per batch and per annotator, the split-vote items with model names; JSON
or CSV; leads only."""

import csv
import io

import pytest

from rewards.models import AgreementSnapshot
from rewards.services.snapshots import snapshot_compute
from tests.factories import BatchFactory, ProjectFactory
from tests.rewards.judging import judge, judge_items

URLS = (
    "/api/v1/projects/{id}/agreement/",
    "/api/v1/projects/{id}/agreement/annotators/",
    "/api/v1/projects/{id}/split-items/",
)


@pytest.fixture
def judged(project):
    """Two batches of the Demo project: the first snapshotted, the second not yet. Item 3 of the first splits."""
    first = BatchFactory(project=project, name="week 1")
    items = judge_items(
        first,
        {
            "ann1": ["a", "b", "a", "a", "b"],
            "ann2": ["a", "b", "b", "a", "b"],
            "ann3": ["a", "b", "tie", "b", "b"],
        },
        response_a_model="sft-7b",
        response_b_model="sft-7b-t0.9",
    )
    second = BatchFactory(project=project, name="week 2")
    judge_items(second, {"ann1": ["a"], "ann2": ["a"], "ann3": ["a"]})
    snapshot = snapshot_compute(batch=first)
    return first, second, items, snapshot


@pytest.mark.parametrize("url", URLS)
def test_only_the_projects_lead_reads_it(url, judged, project, lead_client, annotator_client, ml_engineer_client):
    from rest_framework.test import APIClient

    from tests.factories import UserFactory

    path = url.format(id=project.pk)
    assert lead_client.get(path).status_code == 200
    for client in (annotator_client, ml_engineer_client):
        response = client.get(path)
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    stranger = APIClient()
    stranger.force_authenticate(UserFactory(username="someone-else"))
    assert stranger.get(path).status_code == 404  # no role in the project: as for a missing one
    # A lead of another project is a stranger here.
    other = ProjectFactory(name="Other")
    assert lead_client.get(url.format(id=other.pk)).status_code == 404
    assert APIClient().get(path).status_code in (401, 403)
    assert lead_client.get(url.format(id=999_999)).status_code == 404


def test_agreement_is_the_stored_snapshot_and_never_computed_on_request(judged, project, lead_client):
    first, second, _, snapshot = judged
    body = lead_client.get(f"/api/v1/projects/{project.pk}/agreement/").json()
    assert body["project_id"] == project.pk and body["project"] == project.name
    week1, week2 = body["batches"]
    report = snapshot.report
    assert week1["batch_id"] == first.pk and week1["snapshot_id"] == snapshot.pk
    assert week1["judgments"] == 15 and week1["items"] == 5 and week1["annotator_count"] == 3
    assert week1["cohen_kappa"] == report["cohen_kappa"]["value"] is not None
    assert week1["krippendorff_alpha"] == report["krippendorff_alpha"]["value"]
    assert week1["agreement"] == report["agreement"]["value"]
    assert week1["judgments_per_hour"] == report["judgments_per_hour"]
    assert sum(h["judgments"] for h in week1["judgments_per_hour"]) == 15
    assert {a["username"] for a in week1["annotators"]} == {"ann1", "ann2", "ann3"}
    # The second batch has judgments but no snapshot yet: its figures are missing, not computed now.
    assert week2["batch_id"] == second.pk and week2["snapshot_id"] is None and "cohen_kappa" not in week2
    assert AgreementSnapshot.objects.count() == 1


def test_agreement_as_csv(judged, project, lead_client):
    _first, _second, _, snapshot = judged
    response = lead_client.get(f"/api/v1/projects/{project.pk}/agreement/?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="agreement-project-{project.pk}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0])[:4] == ["batch_id", "batch", "status", "criteria_version"]
    assert "flags" in rows[0] and "krippendorff_alpha" in rows[0]
    assert [r["batch"] for r in rows] == ["week 1", "week 2"]
    assert float(rows[0]["cohen_kappa"]) == pytest.approx(snapshot.report["cohen_kappa"]["value"])
    assert rows[1]["cohen_kappa"] == ""


def test_annotators_json_and_csv(judged, project, lead_client):
    _first, *_ = judged
    rows = lead_client.get(f"/api/v1/projects/{project.pk}/agreement/annotators/").json()
    assert {(r["batch"], r["username"]) for r in rows} == {("week 1", f"ann{i}") for i in (1, 2, 3)}
    assert all(r["judgments"] == 5 and "left_share" in r and isinstance(r["flags"], list) for r in rows)
    response = lead_client.get(f"/api/v1/projects/{project.pk}/agreement/annotators/?format=csv")
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="annotators-project-{project.pk}.csv"'
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(table[0])[:4] == ["batch_id", "batch", "annotator_id", "username"]
    assert sorted(r["username"] for r in table) == ["ann1", "ann2", "ann3"]


def test_split_items_show_votes_and_model_names_to_the_lead(judged, project, lead_client):
    first, second, items, snapshot = judged
    rows = lead_client.get(f"/api/v1/projects/{project.pk}/split-items/").json()
    # Item 3 (a, b, tie) splits; item 4 (a, a, b) has 2 of 3 A/B votes, at the project's 0.6 minimum: agreed.
    assert rows == [
        {
            "item_pk": items[2].pk,
            "item_id": items[2].external_id,
            "batch": "week 1",
            "reason": "split",
            "votes": {"a": 1, "b": 1, "tie": 1, "both_bad": 0},
            "agreement": pytest.approx(1 / 3, abs=1e-6),
            "margin": 0.0,
            "model_a": "sft-7b",
            "model_b": "sft-7b-t0.9",
            "computed_at": snapshot.computed_at.isoformat(),
        }
    ]
    assert lead_client.get(f"/api/v1/projects/{project.pk}/split-items/?batch={second.pk}").json() == []
    response = lead_client.get(f"/api/v1/projects/{project.pk}/split-items/?batch={first.pk}&format=csv")
    assert response["Content-Disposition"] == f'attachment; filename="split-items-project-{project.pk}.csv"'
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["item_id"], r["model_a"], r["model_b"], r["votes"]) for r in table] == [
        (items[2].external_id, "sft-7b", "sft-7b-t0.9", "a=1 b=1 tie=1 both_bad=0")
    ]
    bad = lead_client.get(f"/api/v1/projects/{project.pk}/split-items/?batch=week")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid" and "batch" in bad.json()
    other = BatchFactory(project=ProjectFactory(name="Elsewhere"))
    assert lead_client.get(f"/api/v1/projects/{project.pk}/split-items/?batch={other.pk}").status_code == 404


def test_split_items_are_read_from_the_latest_snapshot_never_recounted(judged, project, lead_client):
    """The list is the one stored with each batch's latest snapshot: votes after it show at the next snapshot."""
    first, _, items, _ = judged
    url = f"/api/v1/projects/{project.pk}/split-items/"
    judge(items[0], "ann4", "b")  # item 1 now a, a, a, b: still agreed
    judge(items[3], "ann4", "b")  # item 4 now a, a, b, b: no majority
    assert [r["item_pk"] for r in lead_client.get(url).json()] == [items[2].pk]
    later = snapshot_compute(batch=first)
    rows = lead_client.get(url).json()
    assert [(r["item_pk"], r["reason"]) for r in rows] == [(items[2].pk, "split"), (items[3].pk, "split")]
    assert {r["computed_at"] for r in rows} == {later.computed_at.isoformat()}
