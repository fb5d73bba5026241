"""The seeded demo, as a lead first sees it: its history batch has split items (page, API and CSV) and the
annotators it plants are flagged in the stored snapshot, with the figures the metrics give on the same plan."""

import csv
import io
from io import StringIO

import pytest
from django.core.management import call_command

from annotation.models import Batch, Project
from demo.management.commands.seed_demo import HISTORY_BATCH_NAME, PROJECT_NAME
from rewards.metrics import batch_report
from tests.rewards.demo_history import demo_history_judgments

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(client):
    call_command("seed_demo", "--force", stdout=StringIO())
    call_command("agreement", "--project", PROJECT_NAME, stdout=StringIO())
    project = Project.objects.get(name=PROJECT_NAME)
    client.force_login(project.memberships.get(user__username="lead").user)
    return project, Batch.objects.get(project=project, name=HISTORY_BATCH_NAME)


def test_the_demo_history_has_split_items_on_the_page_in_the_api_and_in_the_csv(demo, client):
    project, history = demo
    rows = client.get(f"/api/v1/projects/{project.pk}/split-items/?batch={history.pk}").json()
    assert len(rows) >= 3
    assert {row["reason"] for row in rows} <= {"split", "low_agreement"}
    assert any(row["votes"]["a"] and row["votes"]["b"] for row in rows)  # a real split between the answers
    response = client.get(f"/api/v1/projects/{project.pk}/split-items/?format=csv")
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert sorted(r["item_id"] for r in table) == sorted(r["item_id"] for r in rows)
    # The page opens on the newest batch (the open one, not judged yet) and links the history's split items.
    url = f"/lead/projects/{project.pk}/split-items/"
    first = client.get(url).content.decode()
    assert f'<a href="?batch={history.pk}">{HISTORY_BATCH_NAME}</a> <strong>{len(rows)}</strong>' in first
    page = client.get(f"{url}?batch={history.pk}").content.decode()
    assert page.count('class="split-item"') == len(rows)


def test_the_planted_annotators_are_flagged_in_the_stored_snapshot(demo, client):
    project, history = demo
    annotators = client.get(f"/api/v1/projects/{project.pk}/agreement/annotators/").json()
    flags = {row["username"]: {(f["code"], f["level"]) for f in row["flags"]} for row in annotators}
    assert "position_bias" in {code for code, _ in flags["sim-ann4"]}
    assert {level for _, level in flags["sim-ann6"]} & {"warn", "alarm"}
    for careful in ("sim-ann1", "sim-ann2", "sim-ann3", "sim-ann5"):
        assert not {level for _, level in flags[careful]} & {"warn", "alarm"}
    # The same figures as the metrics on the plan seed_demo wrote: agreement on regular items only.
    judgments, _ = demo_history_judgments()
    expected = batch_report(judgments, raters=project.overlap)
    batches = client.get(f"/api/v1/projects/{project.pk}/agreement/").json()["batches"]
    (batch,) = [b for b in batches if b["batch_id"] == history.pk]
    assert batch["cohen_kappa"] == pytest.approx(expected.cohen_kappa.value)
    assert batch["krippendorff_alpha"] == pytest.approx(expected.krippendorff_alpha.value)
    assert batch["gold_accuracy"] == pytest.approx(expected.gold_accuracy.value)
