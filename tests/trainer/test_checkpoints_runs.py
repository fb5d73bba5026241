"""Checkpoints through the run layer, in this process (no worker): a DPO run started through the API and executed as
the worker does records a Checkpoint row as each one is saved, applies keep_checkpoints, and ends with its final
checkpoint; a run cancelled mid-way keeps those it reached, and a run resumed from one reaches the same step."""

import pytest

from tests.trainer.runs_fixtures import make_snapshot
from trainer.checkpoints import checkpoint_path, checkpoint_verify
from trainer.models import Checkpoint, Status, TrainingRun
from trainer.services import execute
from trainer.services.execute import run_execute
from trainer.services.runs import checkpoint_dir

RUNS = "/api/v1/runs/"


@pytest.fixture(autouse=True)
def quiet_heartbeat(settings):
    # The heartbeat thread would write through its own connection; these runs last seconds.
    settings.TANDEM_RUN_HEARTBEAT_SECONDS = 3600


@pytest.fixture(autouse=True)
def one_torch_thread():
    from tests.trainer.ppo.conftest import _one_torch_thread

    with _one_torch_thread():
        yield


@pytest.fixture
def snapshot(project, artifacts):
    return make_snapshot(project, pairs=32)


def start(client, snapshot, tiny_model_dir, **config) -> TrainingRun:
    body = {
        "kind": "dpo",
        "snapshot": snapshot.pk,
        "config": {
            "base_model": str(tiny_model_dir),
            "batch_size": 2,
            "eval_batch_size": 4,
            "max_length": 64,
            "max_steps": 10,
            "learning_rate": 1e-3,
            **config,
        },
    }
    response = client.post(RUNS, body, format="json")
    assert response.status_code == 201, response.json()
    return TrainingRun.objects.get(pk=response.json()["id"])


def test_a_dpo_run_records_its_checkpoints_keeps_two_and_ends_with_the_final_one(
    ml_engineer_client, snapshot, tiny_model_dir, sent
):
    run = start(ml_engineer_client, snapshot, tiny_model_dir, keep_checkpoints=2)
    assert run_execute(run_id=run.pk) == Status.SUCCEEDED
    rows = list(Checkpoint.objects.filter(run=run).order_by("step"))
    assert [(c.step, c.final, c.resumable, c.deleted_at is not None) for c in rows] == [
        (2, False, True, True),
        (4, False, True, True),
        (6, False, True, False),
        (8, False, True, False),
        (10, True, False, False),
    ]
    assert all("loss" in c.metrics for c in rows)
    final = rows[-1]
    assert final.folder == f"runs/{run.pk}/checkpoint" and checkpoint_path(checkpoint=final) == checkpoint_dir(run=run)
    assert "lineage.json" in final.manifest and "model.safetensors" in final.manifest
    for checkpoint in rows[2:]:
        checkpoint_verify(checkpoint=checkpoint)
        assert checkpoint.size_bytes > 0
    assert not checkpoint_path(checkpoint=rows[0]).exists()

    response = ml_engineer_client.get(f"{RUNS}{run.pk}/checkpoints/")
    assert [r["step"] for r in response.json()] == [2, 4, 6, 8, 10]
    download = ml_engineer_client.get(f"/api/v1/checkpoints/{rows[3].pk}/download/")
    assert download.status_code == 200 and len(b"".join(download.streaming_content)) > rows[3].size_bytes


def test_a_cancelled_run_keeps_its_checkpoints_and_a_resumed_run_reaches_the_same_step(
    ml_engineer_client, snapshot, tiny_model_dir, sent, monkeypatch
):
    real_progress = execute.RunProgress.__call__

    def cancel_at_step_5(self, *, step, total, metrics):
        if step == 5:  # as if an ML engineer pressed Cancel while step 5 ran
            TrainingRun.objects.filter(pk=self.run_id).update(cancel_requested=True)
        return real_progress(self, step=step, total=total, metrics=metrics)

    monkeypatch.setattr(execute.RunProgress, "__call__", cancel_at_step_5)
    run = start(ml_engineer_client, snapshot, tiny_model_dir)
    assert run_execute(run_id=run.pk) == Status.CANCELLED
    run.refresh_from_db()
    assert run.error == "Cancelled at step 5 of 10."
    kept = list(Checkpoint.objects.filter(run=run).order_by("step"))
    assert [(c.step, c.final, c.resumable) for c in kept] == [(2, False, True), (4, False, True)]
    for checkpoint in kept:
        checkpoint_verify(checkpoint=checkpoint)
    monkeypatch.setattr(execute.RunProgress, "__call__", real_progress)

    resumed = start(ml_engineer_client, snapshot, tiny_model_dir, resume_from=kept[1].pk)
    assert resumed.resume_from == kept[1]
    assert run_execute(run_id=resumed.pk) == Status.SUCCEEDED
    resumed.refresh_from_db()
    assert (resumed.step, resumed.total_steps) == (10, 10)
    assert [(c.step, c.final) for c in Checkpoint.objects.filter(run=resumed).order_by("step")] == [
        (6, False),
        (8, False),
        (10, True),
    ]
    # The metrics it logged start after the checkpoint's step.
    assert min(resumed.metrics.values_list("step", flat=True)) == 5

    # A resumed-from checkpoint changed on disk before its run starts: the run is refused, not trained.
    again = start(ml_engineer_client, snapshot, tiny_model_dir, resume_from=kept[0].pk)
    (checkpoint_path(checkpoint=kept[0]) / "config.json").write_text("{}")
    assert run_execute(run_id=again.pk) == Status.FAILED
    again.refresh_from_db()
    assert again.error.startswith("Refused: Checkpoint") and "config.json" in again.error
    assert not Checkpoint.objects.filter(run=again).exists()
