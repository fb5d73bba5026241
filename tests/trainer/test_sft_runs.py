"""SFT runs before any worker: the kind's settings, which snapshot each kind trains on (refused before anything is
queued), an SFT run as the base model of later runs (run:ID), chosen in the admin's start form and listed by the API,
and the lineage and run page of runs on demonstrations. Training itself: test_sft_training.py (the function) and
test_e2e_sft.py (a real worker)."""

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from tests.factories import ProjectFactory
from tests.trainer.runs_fixtures import finished_reward_model, make_snapshot
from tests.trainer.sft_fixtures import make_sft_snapshot
from trainer import configs
from trainer.lineage import lineage_build
from trainer.model_paths import model_resolve
from trainer.models import POLICY_KINDS, Kind, Status, TrainingRun
from trainer.services.runs import checkpoint_dir, run_output_dir

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts", "model_roots")]
RUNS = "/api/v1/runs/"
START = "/admin/trainer/trainingrun/start/"


@pytest.fixture
def sft_snapshot(project):
    return make_sft_snapshot(project)


@pytest.fixture
def pairs(project):
    return make_snapshot(project)


def finished_run(snapshot, *, kind=Kind.SFT, status=Status.SUCCEEDED, base_model="tiny") -> TrainingRun:
    """A run as a worker leaves it (row and a model folder as its checkpoint), without training one."""
    run = TrainingRun.objects.create(
        project_id=snapshot.project_id,
        kind=kind,
        status=status,
        config={"base_model": base_model},
        snapshot=snapshot,
        time_limit_seconds=60,
        finished_at=timezone.now(),
        evaluation={"validation_perplexity": 12.5, "base_validation_perplexity": 40.0},
    )
    run.output_dir = str(run_output_dir(run=run).relative_to(settings.ARTIFACTS_DIR))
    run.save(update_fields=["output_dir"])
    checkpoint_dir(run=run).mkdir(parents=True, exist_ok=True)
    (checkpoint_dir(run=run) / "config.json").write_text("{}")
    return run


def start(client, snapshot, kind, config=None):
    body = {"kind": kind, "snapshot": snapshot.pk, "config": {"base_model": "tiny", **(config or {})}}
    return client.post(RUNS, body, format="json")


def test_sft_defaults_follow_practice_and_it_checkpoints_like_dpo():
    config = configs.validate_config("sft", {"base_model": "m"})
    assert (config["learning_rate"], config["epochs"]) == (2e-5, 3)
    assert {"lora", "lora_r", "lora_alpha", "max_length", "batch_size", "gradient_accumulation_steps", "seed"} <= set(
        config
    )
    assert {"checkpoint_every", "keep_checkpoints", "resume_from"} <= set(config)
    assert "sft" in configs.POLICY_KINDS and Kind.SFT in POLICY_KINDS
    assert "beta" not in config
    assert configs.validate_config("dpo", {"base_model": "m"})["epochs"] == 1  # other kinds keep theirs
    with pytest.raises(configs.ConfigError) as refused:
        configs.validate_config("sft", {"base_model": "m", "beta": 0.1, "epochs": 0})
    assert set(refused.value.errors) == {"beta", "epochs"}


def test_an_sft_run_on_an_sft_snapshot_is_queued(ml_engineer_client, sft_snapshot, sent):
    response = start(ml_engineer_client, sft_snapshot, "sft", {"lora": True, "checkpoint_every": 2})
    assert response.status_code == 201, response.json()
    run = TrainingRun.objects.get()
    assert (run.kind, run.snapshot_id, run.config["learning_rate"], run.config["lora"]) == (
        "sft",
        sft_snapshot.pk,
        2e-5,
        True,
    )


def test_an_sft_run_refuses_a_preference_snapshot(ml_engineer_client, pairs, sent):
    response = start(ml_engineer_client, pairs, "sft")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_config"
    assert "holds preference pairs" in body["errors"]["snapshot"]
    assert not TrainingRun.objects.exists() and sent == []


@pytest.mark.parametrize("kind", ["reward_model", "dpo", "ppo", "rloo"])
def test_other_kinds_refuse_an_sft_snapshot(kind, ml_engineer_client, sft_snapshot, pairs, sent):
    reward_model = finished_reward_model(pairs)
    extra = {"reward_model_run": reward_model.pk} if kind in ("ppo", "rloo") else {}
    body = {"kind": kind, "snapshot": sft_snapshot.pk, "config": {"base_model": "tiny"}, **extra}
    response = ml_engineer_client.post(RUNS, body, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_config"
    assert "holds demonstrations" in body["errors"]["snapshot"]
    assert not TrainingRun.objects.exclude(pk=reward_model.pk).exists() and sent == []


def test_the_admin_form_shows_the_snapshot_refusal_on_its_field(ml_engineer, sft_snapshot, sent):
    client = admin_client(ml_engineer)
    response = client.post(START, {"kind": "dpo", "snapshot": sft_snapshot.pk, "base_model": "tiny", "settings": ""})
    assert response.status_code == 200
    assert "holds demonstrations" in " ".join(response.context["form"].errors["snapshot"])
    assert not TrainingRun.objects.exists() and sent == []


def admin_client(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def test_a_succeeded_sft_run_is_a_base_model_and_failed_or_foreign_ones_are_not(project, sft_snapshot):
    sft = finished_run(sft_snapshot)
    resolved = model_resolve(value=f"run:{sft.pk}", project_id=project.pk)
    assert resolved.stored == f"run:{sft.pk}" and Path(resolved.load) == checkpoint_dir(run=sft).resolve()
    failed = finished_run(sft_snapshot, status=Status.FAILED)
    other = ProjectFactory()
    for value, project_id in ((f"run:{failed.pk}", project.pk), (f"run:{sft.pk}", other.pk)):
        with pytest.raises(configs.ConfigError):
            model_resolve(value=value, project_id=project_id)


def test_the_admin_form_offers_succeeded_runs_as_base_models_and_starts_dpo_on_one(
    ml_engineer, project, sft_snapshot, pairs, sent, django_capture_on_commit_callbacks
):
    sft = finished_run(sft_snapshot)
    dpo = finished_run(pairs, kind=Kind.DPO)
    failed = finished_run(sft_snapshot, status=Status.FAILED)
    reward_model = finished_reward_model(pairs)
    elsewhere = finished_run(make_sft_snapshot(ProjectFactory()))
    client = admin_client(ml_engineer)
    page = client.get(START).content.decode()
    select = re.search(r'<select name="base_model_run".*?</select>', page, re.S).group(0)
    choices = {int(value) for value in re.findall(r'<option value="(\d+)"', select)}
    assert choices == {sft.pk, dpo.pk}
    assert failed.pk not in choices and reward_model.pk not in choices and elsewhere.pk not in choices
    # The SFT run's admin page offers DPO from it, with the run chosen in the form.
    link = f"{START}?base_model_run={sft.pk}&amp;kind=dpo"
    assert link in client.get(f"/admin/trainer/trainingrun/{sft.pk}/change/").content.decode()
    page = client.get(link.replace("&amp;", "&")).content.decode()
    assert re.search(rf'<option value="{sft.pk}" selected>', page)
    assert re.search(r'<option value="dpo" selected>', page)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            START, {"kind": "dpo", "snapshot": pairs.pk, "base_model_run": sft.pk, "base_model": "", "settings": ""}
        )
    assert response.status_code == 302, response.context["form"].errors
    run = TrainingRun.objects.get(kind=Kind.DPO, status=Status.QUEUED)
    assert run.config["base_model"] == f"run:{sft.pk}"
    assert len(sent) == 1

    # A run chosen and a different path typed: nothing is queued, the form says why.
    response = client.post(
        START, {"kind": "dpo", "snapshot": pairs.pk, "base_model_run": sft.pk, "base_model": "tiny", "settings": ""}
    )
    assert response.status_code == 200
    assert "leave the path empty" in " ".join(response.context["form"].errors["base_model"])
    assert TrainingRun.objects.filter(status=Status.QUEUED).count() == 1


def test_the_api_lists_base_model_runs_of_the_project(ml_engineer_client, lead_client, project, sft_snapshot, pairs):
    sft = finished_run(sft_snapshot)
    finished_run(sft_snapshot, status=Status.FAILED)
    finished_reward_model(pairs)
    url = f"/api/v1/projects/{project.pk}/base-models/"
    response = ml_engineer_client.get(url)
    assert response.status_code == 200
    rows = response.json()
    assert [row["value"] for row in rows] == [f"run:{sft.pk}"]
    assert rows[0]["kind"] == "sft" and rows[0]["evaluation_summary"]["name"] == "validation_perplexity"
    assert lead_client.get(url).status_code == 403  # leads look at runs; ML engineers start them


def test_lineage_of_sft_and_of_a_dpo_run_on_it_go_back_to_the_demonstrations(project, sft_snapshot, pairs):
    sft = finished_run(sft_snapshot)
    sft.lineage = lineage_build(run=sft)
    sft.save(update_fields=["lineage"])
    demonstrations = sft.lineage["demonstrations"]
    writers = demonstrations["writers"]
    assert sorted(writers.values()) == [20, 20] and all(name.startswith("writer-") for name in writers)
    assert list(demonstrations["reviewers"].values()) == [40]
    assert [b["kind"] for b in demonstrations["batches"]] == ["demonstration"]
    assert sft.lineage["base_run"] is None and sft.lineage["reference_model"] is None

    dpo = finished_run(pairs, kind=Kind.DPO, base_model=f"run:{sft.pk}")
    lineage = json.loads(json.dumps(lineage_build(run=dpo), default=str))
    assert lineage["demonstrations"] is None  # its own snapshot holds pairs
    assert lineage["reference_model"] == f"run:{sft.pk}"
    base = lineage["base_run"]
    assert (base["id"], base["kind"]) == (sft.pk, "sft")
    assert base["snapshot"]["id"] == sft_snapshot.pk
    assert base["demonstrations"]["writers"] == writers


def test_the_run_page_shows_the_demonstrations_and_the_base_run(ml_engineer, project, sft_snapshot, pairs):
    sft = finished_run(sft_snapshot)
    sft.lineage = lineage_build(run=sft)
    sft.save(update_fields=["lineage"])
    dpo = finished_run(pairs, kind=Kind.DPO, base_model=f"run:{sft.pk}")
    dpo.lineage = lineage_build(run=dpo)
    dpo.save(update_fields=["lineage"])
    client = Client()
    client.force_login(ml_engineer)
    writer = next(iter(sft.lineage["demonstrations"]["writers"]))
    page = client.get(f"/runs/{sft.pk}/").content.decode()
    assert 'id="lineage-demonstrations"' in page and writer in page and "validation demonstrations" in page
    page = client.get(f"/runs/{dpo.pk}/").content.decode()
    assert f'href="/runs/{sft.pk}/"' in page and "trained on demonstrations written by" in page and writer in page


def test_start_run_takes_sft_and_a_run_as_base_model(project, sft_snapshot, pairs, sent):
    with pytest.raises(CommandError, match=r"snapshot: Dataset snapshot \d+ holds preference pairs"):
        call_command(
            "start_run", "--kind", "sft", "--snapshot", str(pairs.pk), "--base-model", "tiny", stdout=StringIO()
        )
    call_command(
        "start_run", "--kind", "sft", "--snapshot", str(sft_snapshot.pk), "--base-model", "tiny", stdout=StringIO()
    )
    sft = finished_run(sft_snapshot)
    call_command(
        "start_run", "--kind", "dpo", "--snapshot", str(pairs.pk), "--base-model", f"run:{sft.pk}", stdout=StringIO()
    )
    assert list(
        TrainingRun.objects.filter(status=Status.QUEUED).order_by("pk").values_list("kind", "config__base_model")
    ) == [
        ("sft", str(Path(settings.TANDEM_MODEL_ROOTS[0]).resolve() / "tiny")),
        ("dpo", f"run:{sft.pk}"),
    ]
