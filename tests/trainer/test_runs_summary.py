"""What the runs API and pages say about a run beyond its status: the reward model's flags (with the TANDEM_RM_*
thresholds), the key evaluation figure per kind and how long the run ran, in the list and on the run page."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.trainer.runs_fixtures import finished_reward_model
from trainer.models import Kind, Status, TrainingRun

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts")]
RUNS = "/api/v1/runs/"

# The reward model: 0.846 next to a "prefer the longer answer" baseline of 0.846, reward following length.
LENGTH_ONLY = {
    "accuracy": 11 / 13,
    "baseline_longer_accuracy": 11 / 13,
    "accuracy_gain_over_longer": 0.0,
    "accuracy_gain_over_longer_sd": 0.0,
    "reward_length_spearman": 0.93,
    "n_pairs": 13,
}
GOOD = {
    "accuracy": 0.9,
    "baseline_longer_accuracy": 0.6,
    "accuracy_gain_over_longer": 0.3,
    "accuracy_gain_over_longer_sd": 0.5,
    "reward_length_spearman": 0.1,
    "n_pairs": 400,
}


def reward_model(snapshot, evaluation, *, minutes=12):
    run = finished_reward_model(snapshot)
    finished = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(
        evaluation=evaluation, started_at=finished - timedelta(minutes=minutes, seconds=5), finished_at=finished
    )
    run.refresh_from_db()
    return run


def test_the_api_flags_a_reward_model_that_only_measures_length(ml_engineer_client, snapshot):
    run = reward_model(snapshot, LENGTH_ONLY)
    body = ml_engineer_client.get(f"{RUNS}{run.pk}/").json()
    assert [flag["code"] for flag in body["flags"]] == ["not_better_than_length", "reward_tracks_length"]
    assert all(set(flag) == {"code", "detail"} and flag["detail"] for flag in body["flags"])
    assert "accuracy 0.846 against 0.846" in body["flags"][0]["detail"]
    good = reward_model(snapshot, GOOD)
    assert ml_engineer_client.get(f"{RUNS}{good.pk}/").json()["flags"] == []


def test_the_thresholds_are_settings(ml_engineer_client, snapshot, settings):
    run = reward_model(snapshot, LENGTH_ONLY)
    settings.TANDEM_RM_MAX_LENGTH_CORRELATION = 0.95
    settings.TANDEM_RM_LENGTH_MARGIN = -0.5  # a gain of 0 clears a margin of -0.5
    assert ml_engineer_client.get(f"{RUNS}{run.pk}/").json()["flags"] == []
    settings.TANDEM_RM_LENGTH_MARGIN = 0.5
    good = reward_model(snapshot, GOOD)  # its interval is about 0.25 to 0.35: short of a 0.5 margin
    codes = [flag["code"] for flag in ml_engineer_client.get(f"{RUNS}{good.pk}/").json()["flags"]]
    assert codes == ["not_better_than_length"]


def test_the_list_has_the_key_figure_per_kind_the_duration_and_the_flags(ml_engineer_client, snapshot, ml_engineer):
    rm = reward_model(snapshot, LENGTH_ONLY, minutes=12)
    now = timezone.now()
    dpo = TrainingRun.objects.create(
        project=snapshot.project,
        kind=Kind.DPO,
        status=Status.SUCCEEDED,
        config={},
        snapshot=snapshot,
        time_limit_seconds=60,
        evaluation={"reward_accuracy": 0.75, "n_pairs": 8},
        started_at=now - timedelta(seconds=90),
        finished_at=now,
    )
    running = TrainingRun.objects.create(
        project=snapshot.project,
        kind=Kind.PPO,
        reward_model=rm,
        status=Status.RUNNING,
        config={},
        snapshot=snapshot,
        time_limit_seconds=600,
        started_at=now - timedelta(seconds=30),
    )
    queued = TrainingRun.objects.create(
        project=snapshot.project,
        kind=Kind.RLOO,
        reward_model=rm,
        status=Status.QUEUED,
        config={},
        snapshot=snapshot,
        time_limit_seconds=1,
    )
    rows = {row["id"]: row for row in ml_engineer_client.get(RUNS).json()}
    assert rows[rm.pk]["evaluation_summary"] == {
        "name": "accuracy",
        "label": "accuracy",
        "value": pytest.approx(11 / 13),
    }
    assert rows[rm.pk]["duration_seconds"] == pytest.approx(725, abs=1)
    assert [flag["code"] for flag in rows[rm.pk]["flags"]] == ["not_better_than_length", "reward_tracks_length"]
    assert rows[dpo.pk]["evaluation_summary"]["name"] == "reward_accuracy"
    assert rows[dpo.pk]["duration_seconds"] == pytest.approx(90, abs=1)
    assert rows[running.pk]["evaluation_summary"] is None
    assert 29 <= rows[running.pk]["duration_seconds"] < 60  # still running: up to now
    assert rows[queued.pk]["duration_seconds"] is None and rows[queued.pk]["flags"] == []

    client = Client()
    client.force_login(ml_engineer)
    html = client.get("/runs/").content.decode()
    assert "<th>Evaluation</th>" in html and "<th>Duration</th>" in html
    assert "accuracy 0.846" in html and "reward accuracy 0.750" in html
    assert "12 min 05 s" in html and "1 min 30 s" in html
    assert "not_better_than_length" in html


def test_the_run_page_shows_the_flags(ml_engineer, snapshot):
    run = reward_model(snapshot, LENGTH_ONLY)
    client = Client()
    client.force_login(ml_engineer)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert '<section id="run-flags"' in html and 'data-code="not_better_than_length"' in html
    good = reward_model(snapshot, GOOD)
    html = client.get(f"/runs/{good.pk}/").content.decode()
    assert '<section id="run-flags" class="run-flags" aria-labelledby="flags-title" hidden>' in html
