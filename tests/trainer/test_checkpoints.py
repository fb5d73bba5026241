"""Checkpoint rows without training: the step schedule, what a recorded checkpoint holds, keep_checkpoints, the
tamper check, the streamed archive and its API (who may list and download), and the rules for resume_from."""

import io
import json
import tarfile
from pathlib import Path

import pytest
from django.utils import timezone

from tests.trainer.runs_fixtures import make_snapshot
from trainer.checkpoints import (
    checkpoint_archive,
    checkpoint_path,
    checkpoint_record,
    checkpoint_steps,
    checkpoint_verify,
    checkpoints_retain,
    resume_from_error,
)
from trainer.errors import CheckpointGone, CheckpointTampered
from trainer.ml.checkpointing import intermediate_steps, step_folder, write_resume_marker
from trainer.models import Checkpoint, Kind, Status, TrainingRun
from trainer.services.runs import run_output_dir

RUNS = "/api/v1/runs/"


# --- The schedule ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "every", "expected"),
    [
        (100, None, [20, 40, 60, 80, 100]),  # 4 evenly spaced, plus the final one
        (10, None, [2, 4, 6, 8, 10]),
        (7, None, [1, 3, 4, 6, 7]),  # rounded: 1.4, 2.8, 4.2, 5.6
        (3, None, [1, 2, 3]),  # a short run saves fewer
        (1, None, [1]),
        (0, None, []),
        (10, 3, [3, 6, 9, 10]),
        (10, 5, [5, 10]),  # step 10 is the final one, saved once
        (10, 20, [10]),
        (10, 1, list(range(1, 11))),
    ],
)
def test_checkpoint_steps(total, every, expected):
    assert checkpoint_steps(total, every) == expected


def test_intermediate_steps_leave_out_the_final_one_and_those_already_done():
    assert intermediate_steps(10, None) == {2, 4, 6, 8}
    assert intermediate_steps(10, None, after=4) == {6, 8}
    with pytest.raises(ValueError):
        checkpoint_steps(10, 0)


# --- Recording, retention, tampering ----------------------------------------------------------------------------


def policy_run(snapshot, *, kind=Kind.DPO, status=Status.SUCCEEDED, config=None) -> TrainingRun:
    run = TrainingRun.objects.create(
        project_id=snapshot.project_id,
        kind=kind,
        status=status,
        config=config or {"base_model": "tiny", "lora": False},
        snapshot=snapshot,
        time_limit_seconds=60,
        finished_at=timezone.now(),
    )
    run.output_dir = str(run_output_dir(run=run).relative_to(run_output_dir(run=run).parents[1]))
    run.save(update_fields=["output_dir"])
    return run


def saved_checkpoint(run, step: int, *, final=False, resumable=True, metrics=None) -> Checkpoint:
    """A folder as a trainer leaves it (weights, a tokenizer file, optimizer state in resume/), then its row."""
    folder = run_output_dir(run=run) / "checkpoint" if final else step_folder(run_output_dir(run=run), step)
    (folder / "resume").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"step": step}))
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * (step + 3))
    (folder / "resume" / "optimizer.pt").write_bytes(b"adam" * 1000)
    if resumable:
        write_resume_marker(folder, fmt="hf-trainer", state_dir="resume", step=step)
    return checkpoint_record(
        run_id=run.pk, step=step, folder=folder, metrics=metrics or {"loss": 0.5, "kl": float("nan")}, final=final
    )


@pytest.fixture
def snapshot(project, artifacts):
    return make_snapshot(project)


def test_a_recorded_checkpoint_holds_its_manifest_size_and_finite_metrics(snapshot):
    run = policy_run(snapshot)
    checkpoint = saved_checkpoint(run, 4)
    folder = checkpoint_path(checkpoint=checkpoint)
    assert checkpoint.folder == f"runs/{run.pk}/checkpoints/step-4"
    assert set(checkpoint.manifest) == {"config.json", "model.safetensors", "resume/optimizer.pt", "tandem_resume.json"}
    assert (
        checkpoint.manifest["model.safetensors"]
        == __import__("hashlib").sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    )
    assert checkpoint.size_bytes == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert checkpoint.metrics == {"loss": 0.5}  # NaN is not JSON: left out
    assert checkpoint.resumable and not checkpoint.final
    checkpoint_verify(checkpoint=checkpoint)  # untouched: no error


@pytest.mark.parametrize("change", ["edit", "remove", "add"])
def test_a_changed_missing_or_added_file_is_tampering(snapshot, change):
    checkpoint = saved_checkpoint(policy_run(snapshot), 2)
    folder = checkpoint_path(checkpoint=checkpoint)
    if change == "edit":
        with open(folder / "model.safetensors", "r+b") as handle:
            handle.write(b"\xff")
    elif change == "remove":
        (folder / "resume" / "optimizer.pt").unlink()
    else:
        (folder / "extra.bin").write_bytes(b"x")
    with pytest.raises(CheckpointTampered) as caught:
        checkpoint_verify(checkpoint=checkpoint)
    assert caught.value.status == 409 and caught.value.code == "checkpoint_tampered"
    name = {"edit": "model.safetensors", "remove": "resume/optimizer.pt", "add": "extra.bin"}[change]
    assert name in caught.value.detail


def test_keep_checkpoints_removes_the_oldest_intermediate_files_never_the_final_one(snapshot):
    run = policy_run(snapshot)
    steps = [saved_checkpoint(run, s) for s in (2, 4, 6, 8)]
    final = saved_checkpoint(run, 10, final=True, resumable=False)
    assert checkpoints_retain(run_id=run.pk, keep=None) == []
    removed = checkpoints_retain(run_id=run.pk, keep=2)
    assert removed == [steps[1].pk, steps[0].pk]
    for checkpoint in steps:
        checkpoint.refresh_from_db()
    assert [c.deleted_at is not None for c in steps] == [True, True, False, False]
    assert not checkpoint_path(checkpoint=steps[0]).exists() and checkpoint_path(checkpoint=steps[2]).is_dir()
    assert checkpoint_path(checkpoint=final).is_dir()
    with pytest.raises(CheckpointGone):
        checkpoint_verify(checkpoint=steps[0])
    assert checkpoints_retain(run_id=run.pk, keep=1) == [steps[2].pk]  # the final one still stays
    final.refresh_from_db()
    assert final.deleted_at is None


def test_a_checkpoint_another_run_resumed_from_is_kept(snapshot):
    run = policy_run(snapshot)
    first, second = saved_checkpoint(run, 2), saved_checkpoint(run, 4)
    TrainingRun.objects.create(
        project_id=run.project_id,
        kind=Kind.DPO,
        config={},
        snapshot=snapshot,
        time_limit_seconds=60,
        resume_from=first,
    )
    assert checkpoints_retain(run_id=run.pk, keep=1) == []
    assert checkpoint_path(checkpoint=first).is_dir() and checkpoint_path(checkpoint=second).is_dir()


def _untar(content: bytes) -> tuple[list[str], dict[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:") as archive:
        members = archive.getmembers()
        return [m.name for m in members], {m.name: archive.extractfile(m).read() for m in members}


def test_the_archive_is_a_tar_with_the_manifest_first_and_every_file(snapshot):
    checkpoint = saved_checkpoint(policy_run(snapshot), 6)
    names, files = _untar(b"".join(checkpoint_archive(checkpoint=checkpoint)))
    prefix = f"checkpoint-{checkpoint.pk}/"
    assert names[0] == prefix + "manifest.json"
    manifest = json.loads(files[names[0]])
    assert manifest["files"] == checkpoint.manifest and manifest["step"] == 6
    folder = checkpoint_path(checkpoint=checkpoint)
    assert {n.removeprefix(prefix) for n in names[1:]} == set(checkpoint.manifest)
    for name in checkpoint.manifest:
        assert files[prefix + name] == (folder / name).read_bytes()


def test_a_file_changed_while_streaming_stops_the_archive(snapshot):
    checkpoint = saved_checkpoint(policy_run(snapshot), 6)
    stream = checkpoint_archive(checkpoint=checkpoint)
    next(stream)  # the manifest's header: the response has started
    (checkpoint_path(checkpoint=checkpoint) / "model.safetensors").write_bytes(b"swapped" * 300)
    with pytest.raises(CheckpointTampered):
        b"".join(stream)


# --- The API -------------------------------------------------------------------------------------------------------


def test_the_checkpoints_of_a_run_through_the_api(snapshot, ml_engineer_client, lead_client, stranger_client):
    run = policy_run(snapshot)
    early = saved_checkpoint(run, 2, metrics={"loss": 0.7, "reward": 0.1})
    saved_checkpoint(run, 4)
    final = saved_checkpoint(run, 10, final=True, resumable=False)
    checkpoints_retain(run_id=run.pk, keep=1)
    response = ml_engineer_client.get(f"{RUNS}{run.pk}/checkpoints/")
    assert response.status_code == 200
    rows = response.json()
    assert [(r["step"], r["final"], r["resumable"], r["deleted"]) for r in rows] == [
        (2, False, True, True),
        (4, False, True, False),
        (10, True, False, False),
    ]
    assert rows[0]["id"] == early.pk and rows[0]["metrics"] == {"loss": 0.7, "reward": 0.1}
    assert rows[0]["download_url"] is None
    assert rows[2]["size_bytes"] == final.size_bytes and rows[2]["download_url"].endswith(
        f"/api/v1/checkpoints/{final.pk}/download/"
    )
    assert set(rows[0]) >= {"id", "step", "final", "resumable", "metrics", "size_bytes", "deleted", "created_at"}
    assert lead_client.get(f"{RUNS}{run.pk}/checkpoints/").status_code == 200  # leads see runs
    assert stranger_client.get(f"{RUNS}{run.pk}/checkpoints/").status_code == 404


def test_downloading_a_checkpoint(snapshot, ml_engineer_client, lead_client, stranger_client, annotator_client):
    run = policy_run(snapshot)
    checkpoint = saved_checkpoint(run, 10, final=True, resumable=False)
    url = f"/api/v1/checkpoints/{checkpoint.pk}/download/"
    response = ml_engineer_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-tar"
    assert f"run-{run.pk}-step-10-checkpoint-{checkpoint.pk}.tar" in response["Content-Disposition"]
    names, _ = _untar(b"".join(response.streaming_content))
    assert names[0].endswith("/manifest.json") and len(names) == 1 + len(checkpoint.manifest)
    assert lead_client.get(url).status_code == 403  # weights are for the ML engineers
    assert annotator_client.get(url).status_code == 403
    assert stranger_client.get(url).status_code == 404
    assert ml_engineer_client.get("/api/v1/checkpoints/999999/download/").status_code == 404


def test_a_tampered_checkpoint_is_refused_before_the_first_byte(snapshot, ml_engineer_client):
    checkpoint = saved_checkpoint(policy_run(snapshot), 10, final=True, resumable=False)
    (checkpoint_path(checkpoint=checkpoint) / "config.json").write_text("{}")
    response = ml_engineer_client.get(f"/api/v1/checkpoints/{checkpoint.pk}/download/")
    assert response.status_code == 409
    assert response.json()["code"] == "checkpoint_tampered"
    assert "config.json" in response.json()["detail"]


def test_a_removed_checkpoint_is_gone(snapshot, ml_engineer_client):
    run = policy_run(snapshot)
    old, _ = saved_checkpoint(run, 2), saved_checkpoint(run, 4)
    checkpoints_retain(run_id=run.pk, keep=1)
    response = ml_engineer_client.get(f"/api/v1/checkpoints/{old.pk}/download/")
    assert (response.status_code, response.json()["code"]) == (410, "checkpoint_deleted")


# --- resume_from ---------------------------------------------------------------------------------------------------


def test_resume_from_rules(snapshot, project):
    from tests.factories import ProjectFactory

    run = policy_run(snapshot)
    good = saved_checkpoint(run, 4)
    final = saved_checkpoint(run, 10, final=True, resumable=False)

    def error(checkpoint_id, *, kind=Kind.DPO, snapshot_id=snapshot.pk, project_id=project.pk, **config):
        return resume_from_error(
            checkpoint_id=checkpoint_id,
            kind=kind,
            snapshot_id=snapshot_id,
            project_id=project_id,
            config={"base_model": "tiny", "lora": False, **config},
        )

    assert error(None) is None
    assert error(good.pk) is None
    assert error(10**9) == f"No checkpoint {10**9}."
    assert error(good.pk, project_id=ProjectFactory().pk) == f"No checkpoint {good.pk}."  # no existence oracle
    assert "is of a DPO run; this is a ppo run" in error(good.pk, kind=Kind.PPO)
    assert "same snapshot" in error(good.pk, snapshot_id=make_snapshot(project).pk)
    assert "without optimizer state" in error(final.pk)
    assert "same base_model" in error(good.pk, base_model="other")
    assert "lora" in error(good.pk, lora=True)
    (checkpoint_path(checkpoint=good) / "resume" / "optimizer.pt").write_bytes(b"changed")
    assert "changed since it was saved: resume/optimizer.pt" in error(good.pk)


def test_the_runs_api_refuses_a_tampered_resume_from_and_stores_a_good_one(
    snapshot, ml_engineer_client, tiny_model_dir, sent
):
    run = policy_run(snapshot, config={"base_model": str(tiny_model_dir), "lora": False})
    good, bad = saved_checkpoint(run, 2), saved_checkpoint(run, 4)
    Path(checkpoint_path(checkpoint=bad) / "config.json").write_text("{}")
    config = {"base_model": str(tiny_model_dir), "max_steps": 10}
    response = ml_engineer_client.post(
        RUNS, {"kind": "dpo", "snapshot": snapshot.pk, "config": {**config, "resume_from": bad.pk}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_config"
    assert "config.json" in response.json()["errors"]["resume_from"]
    assert TrainingRun.objects.count() == 1
    response = ml_engineer_client.post(
        RUNS, {"kind": "dpo", "snapshot": snapshot.pk, "config": {**config, "resume_from": good.pk}}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert TrainingRun.objects.get(pk=response.json()["id"]).resume_from == good


# --- The run page and the admin ------------------------------------------------------------------------------------


def _browser(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_the_run_page_lists_the_checkpoints_with_downloads_for_ml_engineers(snapshot, ml_engineer, lead):
    run = policy_run(snapshot)
    old = saved_checkpoint(run, 2, metrics={"loss": 0.25, "rewards_margins": 1.5})
    middle = saved_checkpoint(run, 4)
    final = saved_checkpoint(run, 10, final=True, resumable=False)
    checkpoints_retain(run_id=run.pk, keep=1)
    page = _browser(ml_engineer).get(f"/runs/{run.pk}/").content.decode()
    assert 'id="checkpoints"' in page
    assert "loss 0.25, rewards_margins 1.5" in page
    assert f'href="/api/v1/checkpoints/{old.pk}/download/"' not in page  # its files were removed
    assert "files removed (keep_checkpoints)" in page
    assert f'href="/api/v1/checkpoints/{middle.pk}/download/"' in page
    assert f'href="/api/v1/checkpoints/{final.pk}/download/"' in page
    lead_page = _browser(lead).get(f"/runs/{run.pk}/").content.decode()
    assert 'id="checkpoints"' in lead_page and "/download/" not in lead_page


def test_the_run_admin_shows_the_checkpoints_read_only(snapshot, ml_engineer, lead):
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(pk__in=[ml_engineer.pk, lead.pk]).update(is_staff=True)
    run = policy_run(snapshot)
    checkpoint = saved_checkpoint(run, 4, metrics={"loss": 0.125})
    url = f"/admin/trainer/trainingrun/{run.pk}/change/"
    page = _browser(ml_engineer).get(url).content.decode()
    assert "Checkpoints (files sha256-checked on download)" in page
    assert "loss 0.125" in page
    assert f'href="/api/v1/checkpoints/{checkpoint.pk}/download/"' in page
    assert 'name="checkpoints-0-step"' not in page  # nothing to edit
    lead_page = _browser(lead).get(url).content.decode()
    assert "loss 0.125" in lead_page and "/download/" not in lead_page
