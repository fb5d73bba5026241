"""The run page in Chromium: the progress bar, step and ETA, charts that grow as a worker logs metrics (no reload),
the evaluation table when the run ends, cancelling from the page; no console errors under the strict CSP."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, screenshot
from tests.trainer.runs_fixtures import make_snapshot
from trainer.models import Kind, RunMetric, Status, TrainingRun

pytestmark = pytest.mark.browser


@pytest.fixture
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    return Path(settings.ARTIFACTS_DIR)


@pytest.fixture
def running(transactional_db, artifacts, project, ml_engineer) -> TrainingRun:
    """A PPO-like run a worker is part way through: 4 of 40 steps, loss/reward/kl logged."""
    snapshot = make_snapshot(project)
    now = timezone.now()
    run = TrainingRun.objects.create(
        project=project,
        kind=Kind.DPO,
        status=Status.RUNNING,
        config={"base_model": "tiny", "beta": 0.1},
        snapshot=snapshot,
        created_by=ml_engineer,
        time_limit_seconds=600,
        started_at=now,
        heartbeat_at=now,
        step=4,
        total_steps=40,
        eta=now + timedelta(minutes=3),
        output_dir="runs/1",
    )
    log_metrics(run, range(1, 5))
    return run


def log_metrics(run: TrainingRun, steps) -> None:
    RunMetric.objects.bulk_create(
        RunMetric(run=run, step=s, name=name, value=value)
        for s in steps
        for name, value in (("loss", 1 / s), ("rewards/accuracies", min(1, s / 10)), ("kl", s / 100), ("lr", 1e-5))
    )


def points(page, canvas: str) -> list[int]:
    """Points per dataset of the chart drawn on `canvas`, read from Chart.js itself."""
    return page.evaluate(
        "(id) => { const c = Chart.getChart(document.getElementById(id)); "
        "return c ? c.data.datasets.map(d => d.data.length) : null; }",
        canvas,
    )


def test_the_run_page_follows_a_run_live_and_cancels_it(page, running, ml_engineer):
    log_in(page, ml_engineer.username)
    page.goto(f"/runs/{running.pk}/")
    expect(page.locator("#run-status")).to_have_text("Running")
    expect(page.locator("#run-step")).to_have_text("Step 4 of 40 (10 %)")
    expect(page.locator("#run-eta")).to_contain_text("min left")
    assert page.locator("#run-progress").evaluate("el => el.value") == pytest.approx(0.1)
    for canvas in ("chart-loss", "chart-accuracy", "chart-kl", "chart-other"):
        expect(page.locator(f"#{canvas}")).to_be_visible()
    page.wait_for_function(
        "() => Chart.getChart(document.getElementById('chart-loss'))?.data.datasets[0].data.length === 4"
    )
    assert points(page, "chart-reward") is None  # nothing reward-like was logged: no empty chart
    expect(page.locator('.chart-box[data-group="reward"]')).to_be_hidden()

    # The worker goes on: new points reach the charts without a reload.
    log_metrics(running, range(5, 9))
    TrainingRun.objects.filter(pk=running.pk).update(step=8, heartbeat_at=timezone.now())
    expect(page.locator("#run-step")).to_have_text("Step 8 of 40 (20 %)", timeout=10_000)
    page.wait_for_function(
        "() => Chart.getChart(document.getElementById('chart-loss')).data.datasets[0].data.length === 8"
    )
    assert points(page, "chart-kl") == [8]
    screenshot(page, "run-page-running.png")

    # Cancel from the page: the worker is asked to stop at its next step.
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#run-cancel-note")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    running.refresh_from_db()
    assert running.cancel_requested

    # The worker stops it; the page shows the end without a reload and stops polling.
    TrainingRun.objects.filter(pk=running.pk).update(
        status=Status.CANCELLED, error="Cancelled at step 9 of 40.", finished_at=timezone.now()
    )
    expect(page.locator("#run-status")).to_have_text("Cancelled", timeout=10_000)
    expect(page.locator("#run-error")).to_have_text("Cancelled at step 9 of 40.")
    expect(page.locator("#run")).to_have_attribute("data-polling", "done")


def test_a_finished_run_shows_its_evaluation_and_lineage(page, running, lead):
    TrainingRun.objects.filter(pk=running.pk).update(
        status=Status.SUCCEEDED,
        step=40,
        evaluation={"eval_reward_accuracy": 0.875, "n_pairs": 8},
        lineage={"run": {"id": running.pk}, "batches": [{"id": 1, "name": "train-x"}]},
    )
    log_in(page, lead.username)
    page.goto(f"/runs/{running.pk}/")
    expect(page.locator("#run-status")).to_have_text("Succeeded")
    expect(page.locator("#run")).to_have_attribute("data-polling", "done")
    expect(page.locator("#evaluation")).to_contain_text("eval_reward_accuracy")
    expect(page.locator("#evaluation")).to_contain_text("0.875")
    assert page.locator("#run-progress").evaluate("el => el.value") == 1
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)  # leads look, they do not cancel
    expect(page.locator(".run-lineage")).to_contain_text(f"Snapshot {running.snapshot_id}")
    expect(page.locator(".run-lineage")).to_contain_text("train-x")
    screenshot(page, "run-page-succeeded.png")
