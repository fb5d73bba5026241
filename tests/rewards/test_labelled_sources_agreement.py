"""Agreement figures never count labelled sources: importing the shared HH-RLHF file as one leaves every figure of a
project as it was, and the lead's pages and tables list judged batches only."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from annotation.models import Batch
from rewards.models import AgreementSnapshot
from rewards.services.snapshots import snapshot_all_for_project
from tests.annotation.test_import import HH_FILE, needs_hh
from tests.factories import BatchFactory
from tests.rewards.judging import judge_items

pytestmark = pytest.mark.django_db

VOTES = {
    "ann1": ["a", "a", "b", "tie", "a", "b", "a", "b"],
    "ann2": ["a", "b", "b", "a", "a", "b", "a", "a"],
    "ann3": ["a", "a", "b", "tie", "b", "b", "both_bad", "b"],
}


def figures(project) -> dict:
    """Every batch's freshly computed report, by batch name (the computing time and ids aside)."""
    return {s.batch.name: (s.judgment_count, s.report) for s in snapshot_all_for_project(project_id=project.pk)}


def tables(client, project) -> tuple:
    """The lead's agreement, annotator and split-item tables, without which snapshot they came from and when."""
    agreement = client.get(f"/api/v1/projects/{project.pk}/agreement/").json()["batches"]
    annotators = client.get(f"/api/v1/projects/{project.pk}/agreement/annotators/").json()
    split = client.get(f"/api/v1/projects/{project.pk}/split-items/").json()
    for row in (*agreement, *annotators, *split):
        for key in ("computed_at", "snapshot_id", "snapshot"):
            row.pop(key, None)
    return agreement, annotators, split


@needs_hh
def test_agreement_figures_are_unchanged_by_importing_hh_rlhf_as_a_labelled_source(project, lead, lead_client):
    first = BatchFactory(project=project, name="week-1")
    judge_items(first, VOTES)
    second = BatchFactory(project=project, name="week-2")
    judge_items(second, {name: list(reversed(votes)) for name, votes in VOTES.items()})
    before = figures(project)
    tables_before = tables(lead_client, project)

    call_command("import_labelled", str(HH_FILE), "--project", project.name, "--source", "hh-rlhf", stdout=StringIO())
    source = Batch.objects.get(project=project, name="hh-rlhf")
    # Between the two judged batches in time: the later one's baseline (drift, label shift) would see it if it counted.
    Batch.objects.filter(pk=source.pk).update(created_at=first.created_at + (second.created_at - first.created_at) / 2)
    assert first.created_at < Batch.objects.get(pk=source.pk).created_at < second.created_at

    after = figures(project)
    assert after == before
    assert set(after) == {"week-1", "week-2"}
    assert not AgreementSnapshot.objects.filter(batch=source).exists()
    assert tables(lead_client, project) == tables_before
    assert "hh-rlhf" not in {row["batch"] for row in tables_before[0]}


@needs_hh
def test_the_lead_pages_leave_labelled_sources_out(project, lead):
    judged = BatchFactory(project=project, name="week-1")
    judge_items(judged, VOTES)
    snapshot_all_for_project(project_id=project.pk)
    call_command("import_labelled", str(HH_FILE), "--project", project.name, "--source", "hh-rlhf", stdout=StringIO())
    Batch.objects.filter(name="hh-rlhf").update(created_at=judged.created_at + timedelta(days=1))
    browser = Client()
    browser.force_login(lead)
    for page in ("", "split-items/"):
        html = browser.get(f"/lead/projects/{project.pk}/{page}").content.decode()
        assert "week-1" in html, page
        assert "hh-rlhf" not in html, page  # not a batch with judgments to read, nor the split-items page's default
