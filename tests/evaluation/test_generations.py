"""Generation runs on evaluation sets: the held-out check over a checkpoint's lineage (refused with the ids, or
allowed and recorded), refusals with nothing written (unfinished run, unknown model, tampered checkpoint or set),
the queued generate run and its inputs, through the API, the command and the admin action; who may start them."""

import hashlib
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from core.models import OutboxMessage
from evaluation.errors import EvaluationNotAllowed
from evaluation.models import Sampled
from evaluation.services.generations import generation_start
from evaluation.services.held_out import eval_set_overlap, lineage_runs
from tests.evaluation.sets_fixtures import GOOD_LINES, checkpoint_of, import_set, policy_run, snapshot_of
from tests.trainer.runs_fixtures import finished_reward_model, make_snapshot
from trainer.models import Kind, Status, TrainingRun

pytestmark = pytest.mark.django_db

# make_snapshot's prompts are "Tell me about the {word} number {n}.": this one is the first, differently written.
LEAK = {"id": "leak", "prompt": "tell me about the APPLE   number 0.", "stratum": "usage"}
LEAK_MESSAGES = {"id": "leak2", "messages": [{"role": "user", "content": "Tell me about the river number 1."}]}


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    return Path(settings.ARTIFACTS_DIR)


@pytest.fixture
def model_roots(settings, tmp_path) -> Path:
    root = tmp_path / "models"
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "config.json").write_text("{}")
    settings.TANDEM_MODEL_ROOTS = [str(root)]
    return root.resolve()


@pytest.fixture
def snapshot(project):
    return make_snapshot(project, pairs=8)


@pytest.fixture
def trained(snapshot):
    """A DPO run on the snapshot with an intermediate and a final checkpoint."""
    run = policy_run(snapshot)
    return run, checkpoint_of(run, step=2), checkpoint_of(run, step=4, final=True)


def generate_runs() -> int:
    return TrainingRun.objects.filter(kind=Kind.GENERATE).count()


def assert_nothing_written() -> None:
    assert generate_runs() == 0
    assert not Sampled.objects.exists()
    assert not OutboxMessage.objects.filter(task="trainer.run_training").exists()


def post(client, eval_set, **body):
    return client.post(f"/api/v1/eval-sets/{eval_set.pk}/generations/", body, format="json")


def test_an_overlapping_set_is_refused_with_the_ids_then_allowed_and_recorded(project, ml_engineer_client, trained):
    _, intermediate, _ = trained
    eval_set = import_set(project, lines=[*GOOD_LINES, LEAK, LEAK_MESSAGES])
    response = post(ml_engineer_client, eval_set, model=f"checkpoint:{intermediate.pk}")
    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["code"] == "eval_set_overlap" and body["ids"] == ["leak", "leak2"]
    assert "2 prompt(s)" in body["detail"] and "leak, leak2" in body["detail"]
    assert_nothing_written()

    response = post(ml_engineer_client, eval_set, model=f"checkpoint:{intermediate.pk}", allow_overlap=True)
    assert response.status_code == 201, response.json()
    sampled = Sampled.objects.get()
    assert sampled.overlap_allowed and sampled.overlap_ids == ["leak", "leak2"]
    assert response.json()["overlap_ids"] == ["leak", "leak2"]


def test_a_checkpoint_queues_a_generate_run_that_reads_the_set_file(project, ml_engineer_client, trained, artifacts):
    run, intermediate, _ = trained
    eval_set = import_set(project)
    response = post(
        ml_engineer_client, eval_set, model=f"checkpoint:{intermediate.pk}", config={"temperature": 0.3, "n": 2}
    )
    assert response.status_code == 201, response.json()
    sampled = Sampled.objects.select_related("run").get()
    generate = sampled.run
    assert (generate.kind, generate.status, generate.snapshot_id) == (Kind.GENERATE, Status.QUEUED, None)
    assert generate.sampled_checkpoint_id == intermediate.pk
    assert generate.config["model"] == f"checkpoint:{intermediate.pk}"
    assert (generate.config["temperature"], generate.config["n"], generate.config["max_new_tokens"]) == (0.3, 2, 256)
    prompts = generate.inputs["prompts"]
    assert prompts == {"path": eval_set.path, "sha256": eval_set.sha256, "count": 4}
    assert hashlib.sha256((artifacts / prompts["path"]).read_bytes()).hexdigest() == prompts["sha256"]
    assert (sampled.model_key, sampled.label) == (f"checkpoint:{intermediate.pk}", f"run {run.pk} · step 2")
    assert sampled.overlap_ids == [] and not sampled.overlap_allowed
    assert OutboxMessage.objects.filter(task="trainer.run_training", args=[generate.pk]).exists()
    listed = ml_engineer_client.get(f"/api/v1/projects/{project.pk}/generation-runs/").json()
    assert [(r["run"], r["status"], r["label"]) for r in listed] == [(generate.pk, "queued", sampled.label)]
    csv = ml_engineer_client.get(f"/api/v1/projects/{project.pk}/generation-runs/?format=csv").content.decode()
    assert csv.splitlines()[0].startswith("id,run,status,eval_set") and f",{generate.pk},queued," in csv
    on_set = ml_engineer_client.get(f"/api/v1/eval-sets/{eval_set.pk}/generations/").json()
    assert [r["id"] for r in on_set] == [sampled.pk]


def test_a_finished_run_samples_its_final_checkpoint(project, ml_engineer_client, trained):
    run, _, final = trained
    response = post(ml_engineer_client, import_set(project), model=f"run:{run.pk}")
    assert response.status_code == 201, response.json()
    sampled = Sampled.objects.get()
    assert sampled.model_key == f"checkpoint:{final.pk}" and sampled.run.sampled_checkpoint_id == final.pk
    assert sampled.label == f"run {run.pk} · step 4 (final)"


@pytest.mark.parametrize("state", [Status.RUNNING, Status.QUEUED])
def test_generating_from_an_unfinished_run_is_refused(project, ml_engineer_client, snapshot, state):
    running = policy_run(snapshot, status=state)
    checkpoint_of(running, step=2)  # it has reached a checkpoint: name that one instead
    eval_set = import_set(project)
    response = post(ml_engineer_client, eval_set, model=f"run:{running.pk}")
    assert response.status_code == 400
    assert response.json()["code"] == "run_unfinished"
    assert response.json()["detail"].startswith(
        f"Run {running.pk} is {state}: generate from a finished run or name one of its checkpoints"
    )
    assert_nothing_written()
    with pytest.raises(CommandError, match=f"Run {running.pk} is {state}"):
        call_command("generate", eval_set=eval_set.pk, model=f"run:{running.pk}", stdout=StringIO())
    assert_nothing_written()


def test_models_that_cannot_be_sampled_are_refused(project, ml_engineer_client, snapshot, trained):
    eval_set = import_set(project)
    failed = policy_run(snapshot, status=Status.FAILED)
    no_final = policy_run(snapshot)
    reward_model = finished_reward_model(snapshot)
    other_project_run = policy_run(make_snapshot(_other_project(), pairs=4))
    elsewhere = checkpoint_of(other_project_run, step=1, final=True)
    cases = {
        f"run:{failed.pk}": ("run_unfinished", "failed: it has no final checkpoint"),
        f"run:{no_final.pk}": ("invalid_model", "has no final checkpoint recorded"),
        f"run:{reward_model.pk}": ("invalid_model", "Reward model run: it does not write responses"),
        f"run:{other_project_run.pk}": ("invalid_model", "No run"),
        f"checkpoint:{elsewhere.pk}": ("invalid_model", "No checkpoint"),
        "checkpoint:99999999": ("invalid_model", "No checkpoint"),
        "/etc": ("invalid_config", "Not an allowed model"),
    }
    for model, (code, detail) in cases.items():
        response = post(ml_engineer_client, eval_set, model=model)
        assert response.status_code == 400, (model, response.json())
        body = response.json()
        assert body["code"] == code, (model, body)
        assert detail in json.dumps(body), (model, body)
    assert_nothing_written()


def _other_project():
    from tests.factories import ProjectFactory

    return ProjectFactory(name="Elsewhere")


def test_a_tampered_checkpoint_or_set_file_is_refused(project, ml_engineer_client, trained, artifacts):
    _, intermediate, final = trained
    eval_set = import_set(project)
    (artifacts / intermediate.folder / "model.safetensors").write_bytes(b"other weights")
    response = post(ml_engineer_client, eval_set, model=f"checkpoint:{intermediate.pk}")
    assert response.status_code == 409 and response.json()["code"] == "checkpoint_tampered"
    (artifacts / eval_set.path).write_text('{"id": "p1", "prompt": "swapped"}\n')
    response = post(ml_engineer_client, eval_set, model=f"checkpoint:{final.pk}")
    assert response.status_code == 409 and response.json()["code"] == "eval_set_tampered"
    assert_nothing_written()


def test_a_base_model_folder_has_no_lineage_to_overlap(project, ml_engineer_client, model_roots):
    eval_set = import_set(project, lines=[*GOOD_LINES, LEAK])
    response = post(ml_engineer_client, eval_set, model="tiny")
    assert response.status_code == 201, response.json()
    sampled = Sampled.objects.get()
    assert sampled.model_key == f"base:{model_roots / 'tiny'}" and sampled.label == "base tiny"
    assert sampled.run.sampled_checkpoint_id is None and sampled.overlap_ids == []


def test_the_lineage_follows_base_models_reward_models_and_resumed_checkpoints(project, snapshot, trained):
    first, first_checkpoint, _ = trained
    clean = snapshot_of(project, [f"An unrelated question {n}?" for n in range(4)])
    eval_set = import_set(project, lines=[*GOOD_LINES, LEAK])
    assert eval_set_overlap(eval_set=eval_set, run=first) == ["leak"]
    on_base = policy_run(clean, config={"base_model": f"run:{first.pk}"})
    resumed = policy_run(clean, resume_from=first_checkpoint)
    on_checkpoint = policy_run(clean, config={"base_model": f"checkpoint:{first_checkpoint.pk}"})
    reward_model = finished_reward_model(snapshot)
    ppo = policy_run(clean, kind=Kind.PPO, reward_model=reward_model)
    for run in (on_base, resumed, on_checkpoint, ppo):
        assert {r.pk for r in lineage_runs(run=run)} >= {run.pk}, run
        assert eval_set_overlap(eval_set=eval_set, run=run) == ["leak"], run
    assert {r.pk for r in lineage_runs(run=ppo)} == {ppo.pk, reward_model.pk}
    assert eval_set_overlap(eval_set=eval_set, run=policy_run(clean)) == []
    assert eval_set_overlap(eval_set=eval_set, run=None) == []
    # Conversational snapshots: the prompt is the messages; an SFT-style line's trailing assistant turn is not.
    chat = snapshot_of(project, [[{"role": "user", "content": "Write a haiku about AUTUMN."}], "Other?"])
    assert eval_set_overlap(eval_set=eval_set, run=policy_run(chat)) == ["p1"]


def test_the_command_queues_a_run_with_its_settings_or_lists_every_problem(project, trained, ml_engineer):
    _, intermediate, _ = trained
    eval_set = import_set(project, lines=[*GOOD_LINES, LEAK])
    out = StringIO()
    with pytest.raises(CommandError, match="--allow-overlap") as caught:
        call_command("generate", eval_set=eval_set.pk, model=f"checkpoint:{intermediate.pk}", stdout=out)
    assert "Overlapping ids: leak" in str(caught.value)
    with pytest.raises(CommandError) as caught:
        call_command(
            "generate",
            eval_set=eval_set.pk,
            model=f"checkpoint:{intermediate.pk}",
            set_options=["temperature=hot", "top_p=2", "bogus=1"],
            stdout=out,
        )
    for field in ("temperature", "top_p", "bogus"):
        assert f"  {field}: " in str(caught.value)
    assert_nothing_written()
    call_command(
        "generate",
        eval_set=eval_set.pk,
        model=f"checkpoint:{intermediate.pk}",
        set_options=["temperature=0", "max_new_tokens=32"],
        allow_overlap=True,
        user=ml_engineer.username,
        stdout=out,
    )
    sampled = Sampled.objects.get()
    assert f"Run {sampled.run_id} queued" in out.getvalue() and "overlap allowed on 1 prompt(s)" in out.getvalue()
    assert (sampled.run.config["temperature"], sampled.run.config["max_new_tokens"]) == (0, 32)
    assert sampled.run.created_by == ml_engineer


def test_only_ml_engineers_start_generation_runs(
    project, trained, annotator_client, lead_client, stranger_client, lead
):
    _, intermediate, _ = trained
    eval_set = import_set(project)
    model = f"checkpoint:{intermediate.pk}"
    assert post(annotator_client, eval_set, model=model).status_code == 403
    assert post(lead_client, eval_set, model=model).status_code == 403
    assert post(stranger_client, eval_set, model=model).status_code == 404
    assert annotator_client.get(f"/api/v1/projects/{project.pk}/generation-runs/").status_code == 403
    assert annotator_client.get(f"/api/v1/eval-sets/{eval_set.pk}/generations/").status_code == 403
    assert lead_client.get(f"/api/v1/projects/{project.pk}/generation-runs/").status_code == 200
    with pytest.raises(EvaluationNotAllowed):
        generation_start(eval_set=eval_set, model=model, created_by=lead)
    assert_nothing_written()


def test_the_admin_action_asks_for_the_model_then_queues_the_run(project, ml_engineer, trained):
    _, intermediate, _ = trained
    eval_set = import_set(project, lines=[*GOOD_LINES, LEAK])
    client = Client()
    client.force_login(ml_engineer)
    changelist = "/admin/evaluation/evalset/"
    selected = {"action": "generate_responses", "_selected_action": [eval_set.pk]}
    form = client.post(changelist, selected)
    assert form.status_code == 200 and b'name="apply"' in form.content
    refused = client.post(changelist, {**selected, "apply": "1", "model": f"checkpoint:{intermediate.pk}"})
    assert refused.status_code == 200 and 'id="overlap-ids"' in refused.content.decode()
    assert "leak" in refused.content.decode()
    assert_nothing_written()
    done = client.post(
        changelist,
        {**selected, "apply": "1", "model": f"checkpoint:{intermediate.pk}", "temperature": "0", "allow_overlap": "on"},
    )
    sampled = Sampled.objects.get()
    assert done.status_code == 302 and done["Location"].endswith(f"/trainingrun/{sampled.run_id}/change/")
    assert sampled.overlap_ids == ["leak"] and sampled.run.config["temperature"] == 0
