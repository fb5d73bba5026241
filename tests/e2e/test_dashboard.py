"""The lead's dashboard in Chromium: a lead logs in, opens a project with several snapshotted batches, every chart
draws (Chart.js has data on each canvas and pixels on it), the CSV links download, the annotator and split-items
pages open; no console or page error on the way, and a full-page screenshot is kept in test-results/."""

import re
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from annotation.models import Judgment
from annotation.services import member_add
from rewards.services.snapshots import snapshot_all_for_project
from tests.e2e.conftest import PASSWORD, RESULTS, log_in
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory
from tests.rewards.judging import judge

pytestmark = pytest.mark.browser

ANNOTATORS = ["ada", "ben", "cyd", "dee", "eli", "fay"]
LABELS = ["a", "b", "tie", "both_bad"]
PROJECT_CHARTS = ["chart-kappa", "chart-per-hour", "chart-accuracy", "chart-consensus", "chart-bias"]


@pytest.fixture
def dashboard_project(transactional_db):
    """Four batches judged by six annotators (cyd always picks the left response), spread over hours, each with a
    stored snapshot; one split item whose response is hostile HTML."""
    project = ProjectFactory(name="Helpfulness")
    UserFactory(username="lead", password=PASSWORD)
    member_add(project=project, username="lead", role="lead")
    rng = np.random.default_rng(7)
    start = timezone.now() - timedelta(hours=30)
    for b in range(4):
        batch = BatchFactory(project=project, name=f"week {b + 1}")
        for position in range(36):
            gold = "ab"[position % 2] if position % 6 == 0 else ""
            item = ItemFactory(
                batch=batch, gold=gold, response_b_text="Short." if position % 3 else "A longer answer, " * 5
            )
            truth = gold or str(rng.choice(LABELS, p=[0.45, 0.4, 0.1, 0.05]))
            who = ANNOTATORS if gold else list(rng.choice(ANNOTATORS, size=3, replace=False))
            for username in who:
                shown_left = str(rng.choice(["a", "b"]))
                accurate = 0.85 - 0.1 * b if username == "eli" else 0.85
                choice = truth if rng.random() < accurate else str(rng.choice(LABELS))
                if username == "cyd":
                    choice = shown_left
                judge(item, username, choice, shown_left=shown_left, seconds=float(rng.uniform(2, 40)))
        for judgment in Judgment.objects.filter(batch=batch):
            hour = b * 7 + int(rng.integers(0, 7))
            Judgment.objects.filter(pk=judgment.pk).update(created_at=start + timedelta(hours=hour))
    split = ItemFactory(batch=batch, response_a_text='<img src=x onerror="alert(1)">Hostile', response_a_model="sft-7b")
    for username, choice in zip(ANNOTATORS[:3], ["a", "b", "tie"], strict=True):
        judge(split, username, choice)
    snapshot_all_for_project(project_id=project.pk)
    return project


def chart_state(page, canvas_id: str) -> dict:
    """What Chart.js holds for the canvas and whether anything was painted on it."""
    return page.evaluate(
        """(id) => {
            const canvas = document.getElementById(id);
            const chart = canvas && window.Chart.getChart(canvas);
            if (!chart) return {exists: false};
            const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
            return {
                exists: true,
                type: chart.config.type,
                datasets: chart.data.datasets.length,
                points: chart.data.datasets.reduce(
                    (n, d) => n + d.data.filter((v) => v !== null && v !== undefined).length, 0),
                labels: chart.data.labels.length,
                width: canvas.width,
                painted,
            };
        }""",
        canvas_id,
    )


def test_a_lead_opens_the_dashboard_and_every_chart_draws(page, dashboard_project, record_property):
    project = dashboard_project
    log_in(page, "lead")
    page.get_by_role("link", name="Dashboard", exact=True).click()
    page.wait_for_url("**/lead/")
    page.get_by_role("link", name="Dashboard of Helpfulness").click()
    page.wait_for_url(f"**/lead/projects/{project.pk}/")
    expect(page.get_by_role("heading", name="Helpfulness")).to_be_visible()
    expect(page.locator("#batch-table tbody tr")).to_have_count(4)
    expect(page.locator("#batch-table")).not_to_contain_text("not computed yet")

    page.wait_for_function(
        "(ids) => ids.every((id) => window.Chart && window.Chart.getChart(document.getElementById(id)))",
        arg=PROJECT_CHARTS,
    )
    states = {canvas_id: chart_state(page, canvas_id) for canvas_id in PROJECT_CHARTS}
    for canvas_id, state in states.items():
        assert state["exists"], canvas_id
        assert state["datasets"] >= 1 and state["points"] >= 1, (canvas_id, state)
        assert state["width"] > 0 and state["painted"] > 1000, (canvas_id, state)
    assert states["chart-kappa"]["labels"] == 4
    assert states["chart-accuracy"]["datasets"] == len(ANNOTATORS)
    assert states["chart-bias"]["labels"] == len(ANNOTATORS)
    assert states["chart-per-hour"]["points"] >= 20  # hours over about a day and a half, empty hours as zeros

    # cyd's left bias is flagged and shows in the bias chart's colours and the annotator flags table.
    expect(page.locator("#annotator-flags")).to_contain_text("position bias")
    # What a flag means is on the page as text, and the legend opens on a click or a tap (no hover needed).
    expect(page.locator("#annotator-flags .flag-meaning").first).to_be_visible()
    legend = page.locator("#flag-legend")
    expect(legend.locator("dl")).to_be_hidden()
    legend.locator("summary").click()
    expect(legend.locator("dl")).to_be_visible()
    expect(legend).to_contain_text("a large effect on few judgments")
    # Another batch in the bias chart: the chart redraws with that batch's annotators.
    page.locator("#bias-batch").select_option(label="week 1")
    assert chart_state(page, "chart-bias")["points"] >= len(ANNOTATORS)

    RESULTS.mkdir(exist_ok=True)
    shot = RESULTS / "lead-dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    record_property("screenshot", str(shot))  # in the JUnit XML when pytest writes one
    print(f"screenshot: {shot}")

    # Every CSV link answers 200 with CSV to the browser's session; clicking one downloads a file.
    links = page.locator("a.csv")
    assert links.count() == 2
    for index in range(links.count()):
        response = page.request.get(links.nth(index).get_attribute("href"))
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/csv")
    with page.expect_download() as download:
        links.first.click()
    assert download.value.suggested_filename == f"agreement-project-{project.pk}.csv"
    assert "cohen_kappa" in open(download.value.path()).readline()  # noqa: SIM115

    # The annotator page: their table and their two charts.
    page.locator(".annotator-links").get_by_role("link", name="cyd").click()
    page.wait_for_url(re.compile(r"/annotators/\d+/$"))
    expect(page.locator("#annotator-table tbody tr")).to_have_count(4)
    expect(page.locator("#annotator-table")).to_contain_text("position bias")
    flag = page.locator("#annotator-table details.flag-detail").filter(has_text="position bias").first
    expect(flag.locator(".flag-meaning")).to_be_hidden()
    flag.locator("summary").click()  # a tap opens it, as a click does
    expect(flag.locator(".flag-meaning")).to_be_visible()
    expect(flag).to_contain_text("Picks the response shown on the left")
    for canvas_id in ("chart-annotator-quality", "chart-annotator-habits"):
        page.wait_for_function("(id) => window.Chart.getChart(document.getElementById(id))", arg=canvas_id)
        state = chart_state(page, canvas_id)
        assert state["points"] >= 4 and state["painted"] > 1000, (canvas_id, state)
    page.screenshot(path=str(RESULTS / "lead-annotator.png"), full_page=True)
    assert page.request.get(page.locator("a.csv").get_attribute("href")).status == 200

    # The split items, with the model names and the hostile response as text.
    page.get_by_role("link", name="Helpfulness").click()
    page.get_by_role("link", name="Split items").first.click()
    page.wait_for_url(re.compile(r"/split-items/$"))
    item = page.locator(".split-item").filter(has_text="Hostile")
    expect(item).to_contain_text('<img src=x onerror="alert(1)">Hostile')
    expect(item).to_contain_text("sft-7b")
    assert page.locator(".split-item img").count() == 0
    page.screenshot(path=str(RESULTS / "lead-split-items.png"), full_page=True)
    csv = page.request.get(page.locator("a.csv").get_attribute("href"))
    assert csv.status == 200 and "sft-7b" in csv.text()
