"""The hand-off package (evaluation.services.handoff): built for a release made through the ORM, opened and read as
a newcomer would (manifest, README), downloaded through the API, refused when tampered with, rebuilt by command."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from annotation.models import ImportRecord, Membership
from core.models import OutboxMessage
from evaluation.models import GateDecision, GatePolicy, Release
from evaluation.services.handoff import CheckpointChanged, handoff_build, handoff_build_enqueue, handoff_verify
from rewards.services.snapshots import snapshot_compute
from tests.evaluation.results_world import add_evaluation_batch, add_player, make_world
from tests.factories import UserFactory
from tests.trainer.runs_fixtures import finished_reward_model, make_snapshot
from trainer.models import TrainingRun

pytestmark = pytest.mark.django_db

WEIGHTS = b"tiny weights"


@pytest.fixture
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    return Path(settings.ARTIFACTS_DIR)


@pytest.fixture
def reviewer(project):
    user = UserFactory(username="rita-reviewer")
    Membership.objects.create(project=project, user=user, role="reviewer")
    return user


def _release(project, reviewer, lead, *, override: bool = False) -> Release:
    """A trained world: a snapshot of judged pairs with its agreement report, a reward model and a DPO run on it, the
    DPO checkpoint evaluated against the base model, and a release of it decided by the reviewer."""
    snapshot = make_snapshot(project, pairs=24)
    for batch in snapshot.batches.all():
        snapshot_compute(batch=batch)
        ImportRecord.objects.create(
            project=project, batch=batch, filename="pairs-2026-11.jsonl", status="imported", lines=24, created=24
        )
    reward_model = finished_reward_model(snapshot)
    TrainingRun.objects.filter(pk=reward_model.pk).update(evaluation={"accuracy": 0.8125, "n_pairs": 6})
    world = make_world(project, prompts=60)
    base = add_player(world, step=None)
    candidate = add_player(world, step=100)
    # An online run learns against the reward model, which brings it into the lineage.
    TrainingRun.objects.filter(pk=world.policy_run.pk).update(kind="ppo", reward_model=reward_model)
    checkpoint = candidate.checkpoint
    folder = Path(settings.ARTIFACTS_DIR) / checkpoint.folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    type(checkpoint).objects.filter(pk=checkpoint.pk).update(
        manifest={"model.safetensors": hashlib.sha256(WEIGHTS).hexdigest()}
    )
    checkpoint.refresh_from_db()
    eb = add_evaluation_batch(world, candidate=candidate, baseline=base, share=0.75)
    policy = GatePolicy.objects.create(project=project, version=1, min_win_rate_lower=0.5, created_by=lead)
    checks = [{"criterion": "min_win_rate_lower", "value": 0.66, "threshold": 0.5, "passed": not override}]
    decision = GateDecision.objects.create(
        project=project,
        evaluation_batch=eb,
        checkpoint=checkpoint,
        policy=policy,
        verdict="approve",
        note="Clear win on every stratum; red team clean.",
        checks=checks,
        override=override,
        override_reason="The interval misses by a hair and the launch needs it. We re-evaluate next week."
        if override
        else "",
        reviewer=reviewer,
    )
    return Release.objects.create(
        project=project, checkpoint=checkpoint, decision=decision, released_by=reviewer, override=override
    )


def _open(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_the_package_holds_a_verified_manifest_and_a_readme_a_newcomer_can_follow(artifacts, project, reviewer, lead):
    release = _release(project, reviewer, lead)
    path = handoff_build(release=release)

    release.refresh_from_db()
    assert path.name == f"handoff-{project.name.lower()}-checkpoint-{release.checkpoint_id}.tar.gz".replace("_", "-")
    assert release.package_path == str(path.relative_to(artifacts))
    assert release.package_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    files = _open(path)
    manifest = json.loads(files.pop("manifest.json"))
    assert set(manifest["files"]) == set(files)
    for name, entry in manifest["files"].items():
        assert hashlib.sha256(files[name]).hexdigest() == entry["sha256"], name
        assert len(files[name]) == entry["size"]

    readme = files["README.md"].decode()
    eval_batch = release.decision.evaluation_batch
    criteria_number = eval_batch.batch.criteria_version.number
    assert f"criteria version {criteria_number}" in readme
    training_batch = release.checkpoint.run.snapshot.batches.get()
    assert training_batch.name in readme and eval_batch.batch.name in readme
    kappa = json.loads(files[f"agreement/batch-{training_batch.pk}.json"])["cohen_kappa"]["value"]
    assert kappa is not None and f"{kappa:.3f}" in readme
    results = json.loads(files["evaluation/results.json"])
    win = results["win_rate"]["value"]
    assert win == pytest.approx(0.75) and f"{100 * win:.1f} %" in readme
    assert "rita-reviewer" in readme and "Clear win on every stratum" in readme
    assert "OVERRIDE" not in readme

    # The rest of the list, as files.
    assert f"criteria/v{criteria_number}.md" in files and f"criteria/v{criteria_number}.json" in files
    sampling = json.loads(files["sampling.json"])["batches"]
    assert [b["batch"]["id"] for b in sampling] == [training_batch.pk, eval_batch.batch_id]
    assert sampling[0]["items"] == 24 and sampling[0]["imports"][0]["filename"] == "pairs-2026-11.jsonl"
    assert sampling[1]["strata"] == {"usage": 20, "adversarial": 20, "red_team": 20}  # the evaluation prompts'
    assert "pairs-2026-11.jsonl" in files["sampling.md"].decode()
    assert "Guidelines" in files["guidelines.md"].decode()
    snapshot = release.checkpoint.run.snapshot
    assert f"datasets/snapshot-{snapshot.pk}/manifest.json" in files
    reward = json.loads(files["reward_model.json"])["reward_models"]
    assert [m["overall"]["accuracy"] for m in reward] == [0.8125]
    assert f"runs/run-{release.checkpoint.run_id}/lineage.json" in files
    assert "evaluation/leaderboard.json" in files and "evaluation/flags.json" in files
    gate = json.loads(files["gate.json"])
    assert gate["decision"]["reviewer"] == "rita-reviewer" and gate["checks"][0]["passed"] is True
    checkpoint = json.loads(files["checkpoint.json"])
    assert checkpoint["files"] == [{"path": "model.safetensors", "sha256": hashlib.sha256(WEIGHTS).hexdigest()}]
    assert not any(name.startswith("checkpoint/") for name in files)  # weights referenced, not copied


def test_an_override_is_marked_in_bold_and_weights_come_only_when_asked(artifacts, project, reviewer, lead):
    release = _release(project, reviewer, lead, override=True)
    files = _open(handoff_build(release=release, with_weights=True))
    readme = files["README.md"].decode()
    assert "**OVERRIDE" in readme and "re-evaluate next week" in readme
    assert "**OVERRIDE" in files["gate.md"].decode() and "**FAIL**" in files["gate.md"].decode()
    assert files["checkpoint/model.safetensors"] == WEIGHTS

    # Changed weights are not packed: the build stops and the package written before stays, still verifying.
    release.refresh_from_db()
    before = release.package_sha256
    (artifacts / release.checkpoint.folder / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(CheckpointChanged):
        handoff_build(release=release, with_weights=True)
    release.refresh_from_db()
    assert release.package_sha256 == before
    assert handoff_verify(release=release).is_file()
    assert [p.name for p in (artifacts / "releases" / str(release.pk)).iterdir()] == [Path(release.package_path).name]


def test_download_through_the_api_and_who_may(
    artifacts, project, reviewer, lead, lead_client, ml_engineer_client, annotator_client, stranger_client
):
    from rest_framework.test import APIClient

    release = _release(project, reviewer, lead)
    url = f"/api/v1/releases/{release.pk}/package/"
    assert lead_client.get(url).json()["code"] == "package_not_built"  # 409 until the worker wrote it
    path = handoff_build(release=release)

    response = lead_client.get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body == path.read_bytes()
    assert path.name in response["Content-Disposition"]
    client = APIClient()
    client.force_authenticate(reviewer)
    assert client.get(url).status_code == 200
    assert ml_engineer_client.get(url).status_code == 200
    assert annotator_client.get(url).status_code == 403
    assert stranger_client.get(url).status_code == 404
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        assert tar.getmembers()


def test_a_tampered_package_is_refused(artifacts, project, reviewer, lead, lead_client):
    release = _release(project, reviewer, lead)
    path = handoff_build(release=release)
    with open(path, "ab") as handle:
        handle.write(b"\0")
    response = lead_client.get(f"/api/v1/releases/{release.pk}/package/")
    assert response.status_code == 409 and response.json()["code"] == "package_tampered"
    path.unlink()
    assert lead_client.get(f"/api/v1/releases/{release.pk}/package/").json()["code"] == "package_tampered"


def test_the_command_rebuilds_and_the_task_is_queued_through_the_outbox(artifacts, project, reviewer, lead, capsys):
    release = _release(project, reviewer, lead)
    message = handoff_build_enqueue(release=release)
    assert OutboxMessage.objects.filter(pk=message.pk, task="evaluation.build_handoff").exists()
    call_command("handoff", "--release", str(release.pk))
    path = Path(capsys.readouterr().out.strip())
    release.refresh_from_db()
    assert path.is_file() and release.package_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # The task (as a worker runs it) writes the package again, with the same contents listed.
    from evaluation.tasks import build_handoff_task

    build_handoff_task(release.pk)
    release.refresh_from_db()
    assert release.package_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_reward_model_is_scored_by_dimension_in_the_package(artifacts, project, reviewer, lead, monkeypatch):
    """The builder reads the validation pairs and their dimension votes; the model's scores are stubbed (the chosen
    answer always scores higher), so the figures follow from the votes alone."""
    from annotation.models import Judgment
    from evaluation import handoff_metrics
    from rewards.selectors import dataset_files

    release = _release(project, reviewer, lead)
    reward_model = release.checkpoint.run.reward_model
    (artifacts / reward_model.output_dir / "checkpoint" / "config.json").write_text("{}")
    Judgment.objects.filter(item__project=project, item__batch__kind="comparison").update(
        dimensions={"helpfulness": "a"}
    )
    monkeypatch.setattr(
        handoff_metrics, "score_pairs", lambda *, checkpoint_dir, pairs, **kw: ([1.0] * len(pairs), [0.0] * len(pairs))
    )
    validation = [json.loads(line) for line in dataset_files(snapshot=reward_model.snapshot)["validation"].open()]
    a_chosen = sum(1 for row in validation if row["votes"]["a"] > row["votes"]["b"])
    assert 0 < a_chosen < len(validation)  # both kinds of pair are there

    files = _open(handoff_build(release=release))
    (model,) = json.loads(files["reward_model.json"])["reward_models"]
    helpfulness = model["by_dimension"]["helpfulness"]
    # Agreeing pairs are those where A was chosen: the model ranks the chosen side first on all of them.
    assert helpfulness["n_agreeing"] == a_chosen and helpfulness["agreeing_accuracy"] == 1.0
    # Against the dimension's side (always A): right where A was chosen, wrong where B was.
    assert helpfulness["n_rated"] == len(validation)
    assert helpfulness["rated_accuracy"] == pytest.approx(a_chosen / len(validation))
    assert model["by_stratum"] == {"unspecified": {"accuracy": 1.0, "n": len(validation)}}
    assert "| helpfulness | 100.0 % |" in files["reward_model.md"].decode()


@pytest.mark.worker
def test_a_real_worker_builds_the_package_queued_with_the_release(
    celery_worker_process, project, reviewer, lead, lead_client
):
    """The path a release takes: the message is stored in the release's transaction, sent after the commit, and a
    worker process writes the package, which then downloads and verifies. ARTIFACTS_DIR stays the settings' own (the
    worker reads it from its environment)."""
    from django.db import transaction

    from tests.trainer.test_e2e_training import wait_for

    release = _release(project, reviewer, lead, override=True)
    with transaction.atomic():
        handoff_build_enqueue(release=release)
    wait_for(
        lambda: Release.objects.filter(pk=release.pk).exclude(package_sha256="").exists(),
        timeout=120,
        what="the worker to build the package",
    )
    response = lead_client.get(f"/api/v1/releases/{release.pk}/package/")
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content)), mode="r:gz") as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    manifest = json.loads(files.pop("manifest.json"))
    assert {name: hashlib.sha256(body).hexdigest() for name, body in files.items()} == {
        name: entry["sha256"] for name, entry in manifest["files"].items()
    }
    readme = files["README.md"].decode()
    assert "**OVERRIDE" in readme and "rita-reviewer" in readme
