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
    for canvas in ("chart-loss", "chart-accuracy", "chart-kl"):
        expect(page.locator(f"#{canvas}")).to_be_visible()
    expect(page.locator('.chart-box[data-metric="lr"] canvas')).to_be_visible()  # a chart of its own
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

    # Cancel from the page: it asks first, on the page; "Keep it running" changes nothing.
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#run-cancel-confirm")).to_be_visible()
    expect(page.locator("#run-cancel-confirm")).to_contain_text(f"Cancel run {running.pk}?")
    page.get_by_role("button", name="Keep it running").click()
    expect(page.locator("#run-cancel-confirm")).to_be_hidden()
    running.refresh_from_db()
    assert not running.cancel_requested
    # Confirmed, the worker is asked to stop at its next step.
    page.get_by_role("button", name="Cancel run").click()
    page.get_by_role("button", name="Yes, cancel the run").click()
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


def chart_of(page, selector: str) -> dict:
    """What Chart.js drew on the canvas under `selector`: datasets' point counts and radii, and each axis's labels."""
    return page.evaluate(
        "(sel) => { const c = Chart.getChart(document.querySelector(sel)); if (!c) return null;"
        " return { points: c.data.datasets.map(d => d.data.length),"
        " radius: c.data.datasets.map((d, i) => c.getDatasetMeta(i).data.map(p => p.options.radius)),"
        " y: c.scales.y.ticks.map(t => t.label), x: c.scales.x.ticks.map(t => t.label),"
        " labels: c.data.datasets.map(d => d.label) }; }",
        selector,
    )


@pytest.mark.parametrize(
    ("status", "step", "error", "expected"),
    [
        (Status.FAILED, 0, "OSError: no space left on device", "Failed before its first step"),
        (Status.LOST, 4, "Lost: no heartbeat since 12:00 (timeout 300 s).", "Stopped at step 4 of 40"),
        (Status.CANCELLED, 0, "Cancelled by mle before it started.", "Cancelled before its first step"),
    ],
)
def test_a_run_that_ended_badly_says_so_not_waiting(page, running, ml_engineer, status, step, error, expected):
    TrainingRun.objects.filter(pk=running.pk).update(
        status=status, step=step, total_steps=40 if step else 0, error=error, finished_at=timezone.now()
    )
    log_in(page, ml_engineer.username)
    page.goto(f"/runs/{running.pk}/")
    expect(page.locator("#run")).to_have_attribute("data-polling", "done")
    expect(page.locator("#run-status")).to_have_text(status.label)
    expect(page.locator("#run-step")).to_have_text(expected)
    expect(page.locator("#run-error")).to_have_text(error)
    expect(page.get_by_text("Waiting for the first step")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()


def test_lineage_evaluation_and_flags_fill_in_live_as_the_run_starts_and_ends(page, running, ml_engineer):
    from trainer.lineage import lineage_build

    # A queued reward-model run: nothing about its start is known yet.
    TrainingRun.objects.filter(pk=running.pk).update(
        kind=Kind.REWARD_MODEL, status=Status.QUEUED, step=0, total_steps=0, started_at=None, device="", lineage={}
    )
    RunMetric.objects.filter(run=running).delete()
    log_in(page, ml_engineer.username)
    page.goto(f"/runs/{running.pk}/")
    expect(page.locator("#run-step")).to_have_text("Waiting for a worker")
    expect(page.locator("#lineage-device")).to_have_text("recorded when the run starts")
    expect(page.locator("#lineage-json")).to_have_text("Written when the run starts.")

    # A worker takes it: status first, the lineage a moment later (as trainer.services.execute writes them).
    TrainingRun.objects.filter(pk=running.pk).update(status=Status.RUNNING, started_at=timezone.now())
    expect(page.locator("#run-status")).to_have_text("Running", timeout=10_000)
    running.refresh_from_db()
    lineage = lineage_build(run=running, device="cpu/float32")
    lineage["code"] = {"git_sha": "0123456789abcdef0123", "git_dirty": True, "libraries": {}}
    TrainingRun.objects.filter(pk=running.pk).update(device="cpu/float32", lineage=lineage)
    expect(page.locator("#lineage-device")).to_have_text("cpu/float32", timeout=10_000)
    expect(page.locator("#lineage-code")).to_have_text("0123456789ab (with local changes)")
    expect(page.locator("#lineage-json")).to_contain_text('"device": "cpu/float32"')
    batch = running.snapshot.batches.first()
    expect(page.locator("#lineage-batches").get_by_role("link", name=batch.name)).to_have_attribute(
        "href", f"/admin/annotation/batch/{batch.pk}/change/"
    )
    expect(page.locator("#run-flags")).to_be_hidden()

    # It ends: evaluation, flags and the finished lineage appear without a reload.
    evaluation = {
        "accuracy": 11 / 13,
        "baseline_longer_accuracy": 11 / 13,
        "accuracy_gain_over_longer": 0.0,
        "accuracy_gain_over_longer_sd": 0.0,
        "reward_length_spearman": 0.93,
        "n_pairs": 13,
    }
    finished = timezone.now()
    lineage = {**lineage, "evaluation": evaluation, "run": {**lineage["run"], "status": "succeeded"}}
    TrainingRun.objects.filter(pk=running.pk).update(
        status=Status.SUCCEEDED, evaluation=evaluation, lineage=lineage, finished_at=finished
    )
    expect(page.locator("#run")).to_have_attribute("data-polling", "done", timeout=10_000)
    expect(page.locator("#run-step")).to_have_text("Finished")
    expect(page.locator("#evaluation")).to_contain_text("baseline_longer_accuracy")
    expect(page.locator("#run-flags")).to_be_visible()
    expect(page.locator('#flag-list li[data-code="not_better_than_length"]')).to_contain_text(
        "accuracy 0.846 against 0.846"
    )
    expect(page.locator('#flag-list li[data-code="reward_tracks_length"]')).to_be_visible()
    expect(page.locator("#lineage-finished")).to_have_text(f"{finished:%Y-%m-%d %H:%M:%S}")
    expect(page.locator("#lineage-json")).to_contain_text('"status": "succeeded"')
    screenshot(page, "run-page-flags.png")


def test_charts_keep_scales_apart_label_axes_readably_and_draw_a_single_point(page, running, ml_engineer):
    RunMetric.objects.filter(run=running).delete()
    RunMetric.objects.bulk_create(
        [RunMetric(run=running, step=1, name="loss", value=0.69)]  # one point so far
        + [RunMetric(run=running, step=s, name="learning_rate", value=1e-5 * (1 - s / 100)) for s in range(1, 5)]
        + [RunMetric(run=running, step=s, name="num_tokens", value=12_288.0 * s) for s in range(1, 5)]
        + [RunMetric(run=running, step=s, name="rewards/margins", value=v) for s, v in [(1, -0.3), (2, -0.1), (3, 0.1)]]
    )
    log_in(page, ml_engineer.username)
    page.goto(f"/runs/{running.pk}/")
    page.wait_for_function("() => document.querySelectorAll('#other-charts canvas').length === 2")
    loss = chart_of(page, "#chart-loss")
    assert loss["points"] == [1] and loss["radius"][0][0] > 0  # a single point is drawn
    lr = chart_of(page, '.chart-box[data-metric="learning_rate"] canvas')
    tokens = chart_of(page, '.chart-box[data-metric="num_tokens"] canvas')
    assert lr["labels"] == ["learning_rate"] and tokens["labels"] == ["num_tokens"]  # never on one axis
    margins = chart_of(page, "#chart-reward")
    labels = lr["y"] + tokens["y"] + margins["y"] + loss["y"] + lr["x"]
    # Short, plain labels: no float dust (-1.7e-21 next to 0), no E notation with padded digits.
    assert all(len(label) <= 8 for label in labels), labels
    assert not any("E" in label or "e-1" in label or "e-2" in label for label in labels), labels
    assert "0" in margins["y"]
    assert all(label.endswith("e-6") or label.endswith("e-5") for label in lr["y"]), lr["y"]
    assert all(label.endswith("K") for label in tokens["y"] if label != "0"), tokens["y"]
    assert all(label.isdigit() for label in lr["x"]), lr["x"]  # steps are whole numbers
    screenshot(page, "run-page-charts.png")
