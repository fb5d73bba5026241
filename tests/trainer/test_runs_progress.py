"""The progress callback a worker hands to the training functions: heartbeat, step/total/ETA, thinned metrics, and
RunCancelled on a cancel, past the time limit, or once the run was taken away (marked lost)."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.trainer.runs_fixtures import make_snapshot
from trainer.models import Kind, RunMetric, Status, TrainingRun
from trainer.progress import RunCancelled
from trainer.services import execute
from trainer.services.execute import Heartbeat, RunProgress

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts")]


@pytest.fixture
def run(project) -> TrainingRun:
    long_ago = timezone.now() - timedelta(minutes=5)
    return TrainingRun.objects.create(
        project=project, kind=Kind.DPO, status=Status.RUNNING, config={}, snapshot=make_snapshot(project),
        time_limit_seconds=600, started_at=long_ago, heartbeat_at=long_ago,
    )  # fmt: skip


def progress_for(run, *, seconds_left: float = 600) -> RunProgress:
    return RunProgress(run=run, deadline_monotonic=time.monotonic() + seconds_left)


def test_steps_write_progress_heartbeat_eta_and_metrics(run):
    progress = progress_for(run)
    before = timezone.now()
    for step in range(1, 11):
        progress(step=step, total=20, metrics={"loss": 1 / step, "grad_norm": float("nan"), "note": "x"})
        time.sleep(0.01)
    progress.flush()
    run.refresh_from_db()
    assert (run.step, run.total_steps) == (10, 20)
    assert run.heartbeat_at >= before
    assert run.eta is not None and run.eta > before
    # Numbers only, finite only.
    assert list(RunMetric.objects.filter(run=run).values_list("step", "name")) == [(s, "loss") for s in range(1, 11)]
    assert f"run {run.pk} [" in progress.progress_line({"loss": 0.5})


def test_long_runs_keep_about_two_thousand_points_per_metric_and_every_evaluation(run, monkeypatch):
    monkeypatch.setattr(execute, "PROGRESS_WRITE_SECONDS", 3600)  # one write at the end
    progress = progress_for(run)
    for step in range(1, 10_001):
        progress(step=step, total=10_000, metrics={"loss": 1.0})
    progress(step=10_000, total=10_000, metrics={"eval_accuracy": 0.7})
    stored = RunMetric.objects.filter(run=run, name="loss")
    assert 2000 <= stored.count() <= 2001
    assert stored.filter(step=10_000).exists() and stored.filter(step=1).exists()
    assert RunMetric.objects.filter(run=run, name="eval_accuracy", step=10_000).exists()


def test_a_cancel_request_stops_the_run_at_the_next_step(run):
    progress = progress_for(run)
    progress(step=1, total=10, metrics={"loss": 1.0})
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    with pytest.raises(RunCancelled) as stopped:
        progress(step=2, total=10, metrics={"loss": 0.9})
    assert stopped.value.reason == "cancel requested"
    assert RunMetric.objects.filter(run=run, step=2).exists()  # what the step logged is kept


def test_the_time_limit_stops_the_run(run):
    progress = progress_for(run, seconds_left=-1)
    with pytest.raises(RunCancelled) as stopped:
        progress(step=1, total=10, metrics={})
    assert stopped.value.reason == execute.TIME_LIMIT


def test_a_run_marked_lost_meanwhile_stops_and_keeps_its_verdict(run):
    progress = progress_for(run)
    TrainingRun.objects.filter(pk=run.pk).update(status=Status.LOST, error="Lost: ...")
    with pytest.raises(RunCancelled, match="the run is lost"):
        progress(step=3, total=10, metrics={"loss": 1.0})
    run.refresh_from_db()
    assert (run.status, run.step) == (Status.LOST, 0)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_beats_between_steps_and_stops_with_the_run(project):
    long_ago = timezone.now() - timedelta(minutes=5)
    run = TrainingRun.objects.create(
        project=project, kind=Kind.DPO, status=Status.RUNNING, config={}, snapshot=make_snapshot(project),
        time_limit_seconds=600, started_at=long_ago, heartbeat_at=long_ago,
    )  # fmt: skip
    heartbeat = Heartbeat(run_id=run.pk, interval=0.05)
    heartbeat.start()
    try:
        deadline = time.monotonic() + 5
        while TrainingRun.objects.get(pk=run.pk).heartbeat_at == long_ago and time.monotonic() < deadline:
            time.sleep(0.05)
        assert TrainingRun.objects.get(pk=run.pk).heartbeat_at > long_ago
        TrainingRun.objects.filter(pk=run.pk).update(status=Status.LOST)
        heartbeat.join(timeout=5)
        assert not heartbeat.is_alive()  # nothing left to beat for
    finally:
        heartbeat.stop()
