"""Evaluation batches stay out of dataset snapshots unless an ML engineer asks for them (include_evaluation), through
the service, the API, the admin's Batch action and `manage.py export_pairs`; the manifest says when they are in."""

import io
import json
from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import CommandError, call_command
from django.test import Client

from annotation.models import Batch
from core.models import Job
from rewards.errors import EvaluationBatchNamed
from rewards.models import DatasetSnapshot
from rewards.selectors import dataset_files
from rewards.services.datasets import dataset_create
from tests.core.jobs import follow_job
from tests.rewards.test_datasets import agreed, make_batch, read_jsonl

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    return Path(settings.ARTIFACTS_DIR)


@pytest.fixture
def batches(project):
    """A closed comparison batch of 20 agreed pairs and a closed evaluation batch of 10."""
    training = make_batch(project, [agreed(f"Train {n}?") for n in range(20)], name="training")
    evaluation = make_batch(project, [agreed(f"Checkpoint prompt {n}?", "b") for n in range(10)], name="eval-round")
    Batch.objects.filter(pk=evaluation.pk).update(kind=Batch.Kind.EVALUATION)
    evaluation.refresh_from_db()
    return training, evaluation


def manifest_of(snapshot) -> dict:
    return json.loads(dataset_files(snapshot=snapshot)["manifest"].read_text())


def pair_batches(snapshot) -> set[str]:
    files = dataset_files(snapshot=snapshot)
    return {row["batch"] for name in ("train", "validation") for row in read_jsonl(files[name])}


def test_all_closed_batches_means_all_but_evaluation_ones(project, batches):
    training, _ = batches
    snapshot = dataset_create(project=project)
    assert list(snapshot.batches.all()) == [training]
    assert pair_batches(snapshot) == {"training"}
    assert snapshot.train_count + snapshot.validation_count == 20
    manifest = manifest_of(snapshot)
    assert manifest["includes_evaluation"] is False and manifest["evaluation_batches"] == []
    assert [b["kind"] for b in manifest["batches"]] == ["comparison"]


def test_asked_for_they_are_in_and_the_manifest_says_so(project, batches):
    training, evaluation = batches
    snapshot = dataset_create(project=project, include_evaluation=True)
    assert set(snapshot.batches.all()) == {training, evaluation}
    assert pair_batches(snapshot) == {"training", "eval-round"}
    assert snapshot.train_count + snapshot.validation_count == 30
    manifest = manifest_of(snapshot)
    assert manifest["includes_evaluation"] is True and manifest["evaluation_batches"] == [evaluation.pk]

    named = dataset_create(project=project, batch_ids=[evaluation.pk], include_evaluation=True)
    assert manifest_of(named)["evaluation_batches"] == [evaluation.pk]


def test_naming_one_without_asking_is_refused_with_nothing_made(project, batches, artifacts):
    training, evaluation = batches
    with pytest.raises(EvaluationBatchNamed, match="eval-round") as refused:
        dataset_create(project=project, batch_ids=[training.pk, evaluation.pk])
    assert refused.value.status == 400 and refused.value.extra["batches"] == [evaluation.pk]
    assert not DatasetSnapshot.objects.exists()
    assert not (artifacts / "datasets").exists() or not any((artifacts / "datasets").iterdir())


def test_the_api_refuses_at_once_unless_asked(ml_engineer_client, project, batches):
    training, evaluation = batches
    url = f"/api/v1/projects/{project.pk}/datasets/"
    response = ml_engineer_client.post(url, {"batches": [training.pk, evaluation.pk]}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "evaluation_batch" and "include_evaluation" in response.json()["detail"]
    assert not Job.objects.exists() and not DatasetSnapshot.objects.exists()

    response = ml_engineer_client.post(
        url, {"batches": [training.pk, evaluation.pk], "include_evaluation": True}, format="json"
    )
    job = follow_job(ml_engineer_client, response)
    assert job["state"] == "succeeded", job
    assert {b["name"] for b in job["result"]["batches"]} == {"training", "eval-round"}
    assert manifest_of(DatasetSnapshot.objects.get(pk=job["result"]["id"]))["includes_evaluation"] is True

    everything = follow_job(ml_engineer_client, ml_engineer_client.post(url, {}, format="json"))
    assert [b["name"] for b in everything["result"]["batches"]] == ["training"]


def test_the_admin_action_needs_the_box_ticked(project, batches, ml_engineer):
    training, evaluation = batches
    client = Client()
    client.force_login(ml_engineer)
    selected = {"action": "make_dataset_snapshot", ACTION_CHECKBOX_NAME: [training.pk, evaluation.pk]}
    form = client.post("/admin/annotation/batch/", selected)
    assert form.status_code == 200 and 'name="include_evaluation"' in form.content.decode()
    plain = {**selected, "apply": "1", "weighting": "vote", "validation_fraction": "0.1", "seed": "0"}
    refused = client.post("/admin/annotation/batch/", plain, follow=True)
    assert "not training data unless asked for" in refused.content.decode()
    assert not Job.objects.exists()
    queued = client.post("/admin/annotation/batch/", {**plain, "include_evaluation": "on"})
    assert queued.status_code == 302
    assert Job.objects.get().args["include_evaluation"] is True


def test_export_pairs_takes_them_only_with_the_flag(project, batches, tmp_path):
    out = tmp_path / "pairs.jsonl"
    with pytest.raises(CommandError, match="not training data unless asked for"):
        call_command("export_pairs", "--project", project.name, "--batches", "eval-round", "--out", str(out))
    stdout = io.StringIO()
    call_command(
        "export_pairs",
        "--project",
        project.name,
        "--include-evaluation",
        "--out",
        str(out),
        stdout=stdout,
        stderr=io.StringIO(),
    )
    snapshot = DatasetSnapshot.objects.get(pk=int(stdout.getvalue()))
    assert manifest_of(snapshot)["evaluation_batches"] == [Batch.objects.get(name="eval-round").pk]


def test_qualification_batches_are_never_training_data(ml_engineer_client, project, batches):
    training, _ = batches
    qualifying = make_batch(project, [agreed(f"Qualify {n}?") for n in range(6)], name="qualify")
    Batch.objects.filter(pk=qualifying.pk).update(kind=Batch.Kind.QUALIFICATION)
    assert set(dataset_create(project=project, include_evaluation=True).batches.all()) == set(batches)
    url = f"/api/v1/projects/{project.pk}/datasets/"
    for body in ({"batches": [training.pk, qualifying.pk]}, {"batches": [qualifying.pk], "include_evaluation": True}):
        response = ml_engineer_client.post(url, body, format="json")
        assert (response.status_code, response.json()["code"]) == (400, "qualification_batch"), response.json()
        assert "qualify" in response.json()["detail"]
