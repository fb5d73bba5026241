"""The lead's drill-down in Chromium: from the dashboard to an annotator, to their judgments, filtered to the gold
items they missed, with a hostile justification shown as text and the CSV downloaded."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from annotation.models import Judgment
from annotation.services import member_add
from tests.e2e.conftest import PASSWORD, log_in
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory
from tests.rewards.judging import judge

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="alert(1)">Because'


@pytest.fixture
def judged(transactional_db):
    project = ProjectFactory(name="Drill")
    UserFactory(username="lead", password=PASSWORD)
    member_add(project=project, username="lead", role="lead")
    batch = BatchFactory(project=project, name="week 1")
    for n in range(6):
        item = ItemFactory(batch=batch, external_id=f"item-{n}", gold="a" if n < 3 else "")
        # zed misses gold items 0 and 1, gets gold item 2 right; others agree on A.
        judge(item, "zed", "b" if n < 2 else "a")
        judge(item, "peer", "a")
    Judgment.objects.filter(annotator__username="zed", item__external_id="item-4").update(justification=HOSTILE)
    from rewards.services.snapshots import snapshot_all_for_project

    snapshot_all_for_project(project_id=project.pk)
    return project


def test_a_lead_drills_into_an_annotators_missed_gold_items(page, live_server, judged):
    log_in(page, "lead")
    page.goto(f"{live_server.url}/lead/projects/{judged.pk}/")
    page.get_by_role("link", name="zed").first.click()
    page.wait_for_url("**/annotators/*/")
    page.get_by_role("link", name="Judgments", exact=False).first.click()
    page.wait_for_url("**/judgments/**")
    expect(page.locator("#judgment-table tbody tr")).to_have_count(6)
    expect(page.locator(".justification", has_text="Because")).to_contain_text('<img src=x onerror="alert(1)">')

    page.get_by_label("Only gold items missed").check()
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**gold_missed=1**")
    rows = page.locator("#judgment-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.locator("th.item-id")).to_have_text(["item-1", "item-0"])

    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("judgment_id") or "item" in text.splitlines()[0]
    assert text.count("\n") >= 3
