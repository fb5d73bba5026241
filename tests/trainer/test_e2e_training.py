"""End to end on the CPU with a real Celery worker process (filesystem broker with SQLite, Redis with PostgreSQL) and
a tiny model built in the test: snapshot (rewards' API) -> reward model (runs API) -> DPO (admin form) -> PPO on that
reward model (start_run --wait). Then the ways a run ends badly: a failure with a readable error, cancel, a killed
worker, an invalid config, a tampered snapshot."""

import json
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client

from rewards.models import DatasetSnapshot
from rewards.selectors import dataset_files
from tests.core.jobs import wait_for_job
from tests.rewards.test_datasets import agreed, make_batch
from trainer.models import FINAL_STATUSES, ProjectRunLimits, Status, TrainingRun
from trainer.selectors import run_flags
from trainer.services.runs import run_start
from trainer.tasks import mark_lost_runs_task

pytestmark = pytest.mark.worker
RUNS = "/api/v1/runs/"
WORDS = ["apple", "river", "stone", "cloud", "tiger", "piano", "lemon", "forest"]
# Small and quick: a few optimizer steps each, short sequences.
QUICK = {"batch_size": 4, "eval_batch_size": 4, "max_length": 64, "time_limit_seconds": 300}
# Long enough to still be running when the test cancels it or kills its worker (it is stopped within seconds).
# 1000 epochs is over the default run limit: the tests that use it raise the project's limit, as a superuser would.
LONG = {"batch_size": 2, "eval_batch_size": 4, "max_length": 64, "epochs": 1000, "time_limit_seconds": 240}


def wait_for(predicate, *, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def final_run(run_id: int, *, timeout: float = 150) -> TrainingRun:
    return wait_for(
        lambda: TrainingRun.objects.filter(pk=run_id, status__in=FINAL_STATUSES).first(),
        timeout=timeout,
        what=f"run {run_id} to end",
    )


def running_at_step(run_id: int, step: int, *, timeout: float = 120) -> TrainingRun:
    return wait_for(
        lambda: (
            TrainingRun.objects.filter(pk=run_id, status=Status.RUNNING, step__gte=step).first() or _ended_early(run_id)
        ),
        timeout=timeout,
        what=f"run {run_id} to pass step {step}",
    )


def _ended_early(run_id: int) -> None:
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status not in FINAL_STATUSES, f"run {run_id} ended early: {run.status} {run.error}"


@pytest.fixture
def snapshot(project, ml_engineer_client) -> DatasetSnapshot:
    """Made through rewards' API from a closed batch, as an ML engineer would."""
    items = [
        agreed(f"Tell me about the {WORDS[n % len(WORDS)]} number {n}.", "b" if n % 4 == 0 else "a") for n in range(24)
    ]
    batch = make_batch(project, items, name="e2e")
    response = ml_engineer_client.post(
        f"/api/v1/projects/{project.pk}/datasets/",
        {"batches": [batch.pk], "validation_fraction": 0.25, "seed": 1},
        format="json",
    )
    job = wait_for_job(ml_engineer_client, response)  # a job on the test's worker
    assert job["state"] == "succeeded", job
    return DatasetSnapshot.objects.get(pk=job["result"]["id"])


@pytest.fixture
def long_runs(project) -> None:
    ProjectRunLimits.objects.create(project=project, epochs=LONG["epochs"])


def api_start(client, snapshot, kind: str, config: dict, **extra) -> int:
    response = client.post(RUNS, {"kind": kind, "snapshot": snapshot.pk, "config": config, **extra}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def assert_checkpoint_and_lineage(run: TrainingRun, snapshot: DatasetSnapshot) -> dict:
    assert run.status == Status.SUCCEEDED, run.error + run.error_traceback
    folder = Path(settings.ARTIFACTS_DIR) / run.output_dir
    assert (folder / "checkpoint" / "config.json").is_file()
    on_disk = json.loads((folder / "lineage.json").read_text())
    assert json.loads((folder / "checkpoint" / "lineage.json").read_text()) == on_disk
    assert on_disk["run"]["id"] == run.pk and on_disk["run"]["kind"] == run.kind
    assert on_disk["snapshot"]["id"] == snapshot.pk
    assert on_disk["snapshot"]["sha256"] == snapshot.sha256
    assert on_disk["snapshot"]["counts"] == snapshot.counts
    assert [b["name"] for b in on_disk["batches"]] == ["e2e"]
    assert [c["number"] for c in on_disk["criteria_versions"]] == [1]
    assert on_disk["config"] == run.config
    assert on_disk["evaluation"] == run.evaluation and run.evaluation
    assert on_disk["code"]["libraries"]["torch"]
    assert run.lineage == on_disk
    assert run.step == run.total_steps > 0
    assert run.metrics.filter(name__startswith="eval_").exists()
    return on_disk


def test_snapshot_to_reward_model_to_dpo_to_ppo(
    celery_worker_process, tiny_model_dir, project, ml_engineer, ml_engineer_client, snapshot
):
    base = {"base_model": str(tiny_model_dir), **QUICK}

    # Reward model through the API.
    rm_id = api_start(ml_engineer_client, snapshot, "reward_model", {**base, "max_steps": 4, "learning_rate": 1e-3})
    reward_model = final_run(rm_id)
    assert_checkpoint_and_lineage(reward_model, snapshot)
    assert {"accuracy", "accuracy_shorter_chosen", "reward_length_spearman", "baseline_longer_accuracy"} <= set(
        reward_model.evaluation
    )
    assert reward_model.device.startswith("cpu")
    # The API's flags are read from the stored evaluation, which keeps the gain over the length baseline and its
    # spread for the interval (tests/trainer/test_flags.py checks the figures against scipy and statsmodels).
    assert {"accuracy_gain_over_longer", "accuracy_gain_over_longer_sd", "n_model_beats_longer"} <= set(
        reward_model.evaluation
    )
    detail = ml_engineer_client.get(f"{RUNS}{rm_id}/").json()
    assert detail["flags"] == [flag.as_dict() for flag in run_flags(run=reward_model)]
    assert detail["evaluation_summary"]["name"] == "accuracy" and detail["duration_seconds"] > 0
    metrics = ml_engineer_client.get(f"{RUNS}{rm_id}/metrics/").json()
    assert metrics["status"] == "succeeded" and metrics["series"], metrics
    assert any("loss" in name for name in metrics["series"])
    assert celery_worker_process.wait_for_log(f"run {rm_id} [")  # the worker log's progress bar

    # DPO through the admin's start form.
    ml_engineer.is_staff = True
    ml_engineer.save(update_fields=["is_staff"])
    admin = Client()
    admin.force_login(ml_engineer)
    settings_lines = "\n".join(f"{k}={v}" for k, v in {**QUICK, "max_steps": 3}.items())
    response = admin.post(
        "/admin/trainer/trainingrun/start/",
        {"kind": "dpo", "snapshot": snapshot.pk, "base_model": str(tiny_model_dir), "settings": settings_lines},
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    dpo = final_run(TrainingRun.objects.get(kind="dpo").pk)
    assert_checkpoint_and_lineage(dpo, snapshot)
    assert {"reward_accuracy", "reward_margin_mean"} <= set(dpo.evaluation)

    # PPO on that reward model through the command, following it to the end.
    out = StringIO()
    call_command(
        "start_run", "--kind", "ppo", "--snapshot", str(snapshot.pk), "--base-model", str(tiny_model_dir),
        "--reward-model", str(rm_id), "--user", ml_engineer.username, "--wait", "--poll", "0.5",
        "--set", "max_steps=2", "--set", "rollout_batch_size=4", "--set", "mini_batch_size=2",
        "--set", "batch_size=4", "--set", "response_length=8", "--set", "ppo_epochs=1", "--set", "max_length=64",
        stdout=out,
    )  # fmt: skip
    ppo = TrainingRun.objects.get(kind="ppo")
    assert "Evaluation:" in out.getvalue() and f"run {ppo.pk}: succeeded" in out.getvalue()
    lineage = assert_checkpoint_and_lineage(ppo, snapshot)
    assert lineage["reward_model"]["run"] == rm_id
    assert lineage["reward_model"]["checkpoint"] == f"runs/{rm_id}/checkpoint"
    assert lineage["reward_model"]["evaluation"] == reward_model.evaluation


def test_a_failing_run_keeps_a_readable_error_and_wait_exits_non_zero(celery_worker_process, snapshot, tmp_path):
    broken = tmp_path / "broken-model"  # a model folder (under a model root) that transformers cannot load
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(CommandError, match=r"Run \d+ failed: "):
        call_command(
            "start_run", "--kind", "dpo", "--snapshot", str(snapshot.pk), "--base-model", str(broken),
            "--wait", "--poll", "0.3", stdout=StringIO(),
        )  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.status == Status.FAILED
    name, _, message = run.error.partition(": ")
    assert name.isidentifier() and name[0].isupper(), run.error  # "OSError: ..." - the exception's type first
    assert message
    assert "Traceback (most recent call last)" in run.error_traceback
    assert run.finished_at is not None


def test_cancel_stops_a_running_run_at_its_next_step(
    celery_worker_process, tiny_model_dir, ml_engineer_client, snapshot, long_runs
):
    run_id = api_start(ml_engineer_client, snapshot, "reward_model", {"base_model": str(tiny_model_dir), **LONG})
    running_at_step(run_id, 2)
    response = ml_engineer_client.post(f"{RUNS}{run_id}/cancel/")
    assert response.status_code == 202
    run = final_run(run_id, timeout=30)
    assert run.status == Status.CANCELLED
    assert 2 <= run.step < run.total_steps
    assert run.error.startswith("Cancelled at step")
    assert not (Path(settings.ARTIFACTS_DIR) / run.output_dir / "checkpoint").exists()
    assert celery_worker_process.alive  # the worker stopped the run, not itself


def test_a_run_past_its_time_limit_is_stopped_and_failed(
    celery_worker_process, tiny_model_dir, ml_engineer_client, snapshot, long_runs
):
    config = {"base_model": str(tiny_model_dir), **LONG, "time_limit_seconds": 4}
    run = final_run(api_start(ml_engineer_client, snapshot, "reward_model", config), timeout=60)
    assert run.status == Status.FAILED
    assert run.error == f"Stopped at step {run.step}: time limit of 4 s reached."
    assert 0 < run.step < run.total_steps
    # The limit counts from the start (loading libraries and the model included) and is checked at each step.
    assert (run.finished_at - run.started_at).total_seconds() >= 4


def test_a_killed_worker_leaves_the_run_lost_within_the_heartbeat_timeout(
    celery_worker_process, tiny_model_dir, ml_engineer_client, snapshot, settings, long_runs
):
    settings.TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS = 3
    run_id = api_start(ml_engineer_client, snapshot, "reward_model", {"base_model": str(tiny_model_dir), **LONG})
    running_at_step(run_id, 2)
    time.sleep(1.2)  # a step or two later, the heartbeat is being written
    assert mark_lost_runs_task.apply().get() == []  # alive: not lost
    celery_worker_process.kill()
    killed_at = time.monotonic()
    run = wait_for(
        lambda: (
            (mark_lost_runs_task.apply().get(), TrainingRun.objects.get(pk=run_id))[1].status == Status.LOST
            and TrainingRun.objects.get(pk=run_id)
        ),
        timeout=15,
        what="the run to be marked lost",
        every=0.25,
    )
    # Lost within the timeout (plus the reaper's own polling and the last step's write interval).
    assert time.monotonic() - killed_at <= settings.TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS + 2
    assert run.error.startswith("Lost: no heartbeat since")
    assert run.step < run.total_steps


def test_an_invalid_config_is_refused_before_queueing(
    celery_worker_process, tiny_model_dir, ml_engineer_client, snapshot
):
    since = celery_worker_process.log_size()
    response = ml_engineer_client.post(
        RUNS,
        {"kind": "dpo", "snapshot": snapshot.pk, "config": {"base_model": str(tiny_model_dir), "beta": -1}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"beta": "Must be greater than 0."}
    time.sleep(1)
    assert TrainingRun.objects.count() == 0
    assert "trainer.run_training" not in celery_worker_process.log_text(since)


def test_a_tampered_snapshot_is_refused_at_start_and_by_the_worker(
    celery_worker_process, tiny_model_dir, ml_engineer, ml_engineer_client, snapshot
):
    train = dataset_files(snapshot=snapshot)["train"]
    original = train.read_bytes()
    train.write_bytes(original.replace(b"good", b"best", 1))
    response = ml_engineer_client.post(
        RUNS, {"kind": "dpo", "snapshot": snapshot.pk, "config": {"base_model": str(tiny_model_dir)}}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (409, "dataset_tampered")
    assert TrainingRun.objects.count() == 0

    # Intact when the run is started, changed before the worker reads it: the worker checks again.
    train.write_bytes(original)
    with transaction.atomic():  # the task is sent when this block commits
        run = run_start(
            kind="dpo", snapshot=snapshot, config={"base_model": str(tiny_model_dir), **QUICK}, created_by=ml_engineer
        )
        train.write_bytes(original + b'{"prompt": "injected", "chosen": "x", "rejected": "y"}\n')
    run = final_run(run.pk, timeout=60)
    assert run.status == Status.FAILED
    assert run.error.startswith("Refused: Dataset snapshot")
    assert "train.jsonl" in run.error
    assert run.step == 0
