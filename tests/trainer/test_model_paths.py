"""Which models a run may load, through every door that starts one (the API, the admin's start form, `start_run`)
and again in the worker: a succeeded run of the same project, a checkpoint of one of its runs or a folder under the
model roots; another project's checkpoint, paths outside the roots, links out of them and (unless allowed) hub ids
are refused with one message, whether or not anything is there, and nothing is stored or queued."""

import os
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from annotation.services import member_add
from tests.factories import ProjectFactory
from tests.trainer.runs_fixtures import finished_reward_model, make_snapshot
from trainer.model_paths import HUB_OFF, NOT_A_MODEL, NOT_ALLOWED, hub_offline_unless_allowed
from trainer.models import Kind, Status, TrainingRun
from trainer.services.execute import run_execute
from trainer.services.runs import checkpoint_dir

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts")]
RUNS = "/api/v1/runs/"
START = "/admin/trainer/trainingrun/start/"


@pytest.fixture(autouse=True)
def hub_mode(monkeypatch):
    """The worker's offline switch is process-wide: each test gets back the environment and flag it started with."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "0"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)


@pytest.fixture
def place(model_roots, tmp_path, snapshot, ml_engineer):
    """The model roots, a real model folder outside them, a link under a root that points at it, another project's
    succeeded run (with its checkpoint on disk) and runs of this project that succeeded and failed."""
    outside = tmp_path / "outside" / "secret-model"
    outside.mkdir(parents=True)
    (outside / "config.json").write_text("{}")
    (model_roots / "escape").symlink_to(outside, target_is_directory=True)
    other = ProjectFactory(name="Other")
    member_add(project=other, username=ml_engineer.username, role="ml_engineer")  # even their own other project
    other_run = finished_reward_model(make_snapshot(other))
    return {
        "root": model_roots,
        "outside": outside,
        "other_run": other_run,
        "own_run": finished_reward_model(snapshot),
        "own_failed_run": finished_reward_model(snapshot, status=Status.FAILED),
    }


def refused_values(place) -> dict[str, str]:
    other_checkpoint = checkpoint_dir(run=place["other_run"])
    return {
        "another project's run": f"run:{place['other_run'].pk}",
        "another project's checkpoint by path": str(other_checkpoint),
        "a failed run of this project": f"run:{place['own_failed_run'].pk}",
        "a run that does not exist": "run:999999",
        "an existing folder outside the roots": str(place["outside"]),
        "a missing folder outside the roots": str(place["outside"].parent / "no-such-model"),
        "a system folder": "/etc",
        "a link under a root to a folder outside": "escape",
        "the same link by its absolute path": str(place["root"] / "escape"),
        "dot-dot out of a root": "../outside/secret-model",
    }


CASES = [
    "another project's run",
    "another project's checkpoint by path",
    "a failed run of this project",
    "a run that does not exist",
    "an existing folder outside the roots",
    "a missing folder outside the roots",
    "a system folder",
    "a link under a root to a folder outside",
    "the same link by its absolute path",
    "dot-dot out of a root",
]


def api_start(client, snapshot, base_model, **config):
    body = {"kind": "dpo", "snapshot": snapshot.pk, "config": {"base_model": base_model, **config}}
    return client.post(RUNS, body, format="json")


def admin_start(user, snapshot, base_model):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client.post(START, {"kind": "dpo", "snapshot": snapshot.pk, "base_model": base_model, "settings": ""})


def command_start(snapshot, base_model) -> str:
    out = StringIO()
    call_command(
        "start_run", "--kind", "dpo", "--snapshot", str(snapshot.pk), "--base-model", base_model, "--user", "mle",
        stdout=out,
    )  # fmt: skip
    return out.getvalue()


@pytest.mark.parametrize("case", CASES)
def test_the_api_refuses_with_one_message_and_queues_nothing(place, case, ml_engineer_client, snapshot, sent):
    runs_before = TrainingRun.objects.count()
    response = api_start(ml_engineer_client, snapshot, refused_values(place)[case])
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_config"
    assert body["errors"] == {"base_model": NOT_ALLOWED}
    assert TrainingRun.objects.count() == runs_before
    assert sent == []


@pytest.mark.parametrize("case", CASES)
def test_the_admin_form_refuses_with_one_message_and_queues_nothing(place, case, ml_engineer, snapshot, sent):
    runs_before = TrainingRun.objects.count()
    response = admin_start(ml_engineer, snapshot, refused_values(place)[case])
    assert response.status_code == 200
    assert response.context["form"].errors["base_model"] == [NOT_ALLOWED]
    assert TrainingRun.objects.count() == runs_before
    assert sent == []


@pytest.mark.parametrize("case", CASES)
def test_start_run_refuses_with_one_message_and_queues_nothing(place, case, ml_engineer, snapshot, sent):
    runs_before = TrainingRun.objects.count()
    with pytest.raises(CommandError) as refused:
        command_start(snapshot, refused_values(place)[case])
    assert str(refused.value) == f"Invalid configuration; nothing was queued:\n  base_model: {NOT_ALLOWED}"
    assert TrainingRun.objects.count() == runs_before
    assert sent == []


def test_a_missing_path_reads_exactly_like_an_existing_forbidden_one(place, ml_engineer_client, snapshot, sent):
    values = refused_values(place)
    existing = api_start(ml_engineer_client, snapshot, values["an existing folder outside the roots"])
    missing = api_start(ml_engineer_client, snapshot, values["a missing folder outside the roots"])
    link = api_start(ml_engineer_client, snapshot, values["a link under a root to a folder outside"])
    os.rename(place["outside"], place["outside"].with_name("moved"))  # the link now dangles: still the same answer
    dangling = api_start(ml_engineer_client, snapshot, values["a link under a root to a folder outside"])
    answers = {(r.status_code, r.content) for r in (existing, missing, link, dangling)}
    assert len(answers) == 1


def test_a_folder_under_the_roots_is_accepted_by_name_or_path_and_stored_resolved(
    place, ml_engineer_client, snapshot, sent, django_capture_on_commit_callbacks
):
    root = place["root"]
    (root / "inner-link").symlink_to(root / "tiny", target_is_directory=True)  # a link that stays inside is fine
    for value in ("tiny", str(root / "tiny"), "inner-link", f"{root}/m/../tiny"):
        with django_capture_on_commit_callbacks(execute=True):
            response = api_start(ml_engineer_client, snapshot, value)
        assert response.status_code == 201, (value, response.json())
        assert response.json()["config"]["base_model"] == str(root / "tiny")
    assert len(sent) == 4


def test_the_readme_path_relative_to_the_repository_still_works(settings, tmp_path, ml_engineer_client, snapshot, sent):
    """`--base-model var/models/tiny-demo` in the README: relative to the repository, inside the default root."""
    settings.BASE_DIR = tmp_path / "repo"
    demo = settings.BASE_DIR / "var" / "models" / "tiny-demo"
    demo.mkdir(parents=True)
    (demo / "config.json").write_text("{}")
    settings.TANDEM_MODEL_ROOTS = [str(settings.BASE_DIR / "var" / "models")]
    for value in ("var/models/tiny-demo", "tiny-demo"):
        response = api_start(ml_engineer_client, snapshot, value)
        assert response.status_code == 201, response.json()
        assert response.json()["config"]["base_model"] == str(demo.resolve())


def test_a_succeeded_run_of_the_same_project_is_accepted_and_kept_by_name(
    place, ml_engineer_client, ml_engineer, snapshot, sent, django_capture_on_commit_callbacks
):
    own = place["own_run"]
    with django_capture_on_commit_callbacks(execute=True):
        response = api_start(ml_engineer_client, snapshot, f"run:{own.pk}")
        page = admin_start(ml_engineer, snapshot, f"run:{own.pk}")
        out = command_start(snapshot, f"run:{own.pk}")
    assert response.status_code == 201 and response.json()["config"]["base_model"] == f"run:{own.pk}"
    assert page.status_code == 302 and "queued" in out
    assert len(sent) == 3


def test_a_folder_under_the_roots_without_a_model_says_so(place, ml_engineer_client, snapshot, sent):
    (place["root"] / "empty").mkdir()
    for value in ("empty", "typo-of-tiny", str(place["root"] / "empty")):
        response = api_start(ml_engineer_client, snapshot, value)
        assert response.json()["errors"] == {"base_model": NOT_A_MODEL}
    assert sent == []


def test_a_model_folder_whose_weights_link_out_of_the_roots_is_refused(place, ml_engineer_client, snapshot, sent):
    (place["root"] / "tiny" / "model.safetensors").symlink_to(place["outside"] / "config.json")
    response = api_start(ml_engineer_client, snapshot, "tiny")
    assert response.json()["errors"] == {"base_model": NOT_ALLOWED}
    assert sent == []


def test_hub_ids_only_when_allowed(place, settings, ml_engineer_client, snapshot, sent):
    settings.TANDEM_ALLOW_HUB_MODELS = False
    for value in ("meta-llama/Llama-3.2-1B", "openai-community/gpt2"):
        response = api_start(ml_engineer_client, snapshot, value)
        assert response.status_code == 400
        assert response.json()["errors"] == {"base_model": HUB_OFF}
    assert TrainingRun.objects.filter(kind=Kind.DPO).count() == 0 and sent == []
    settings.TANDEM_ALLOW_HUB_MODELS = True
    response = api_start(ml_engineer_client, snapshot, "meta-llama/Llama-3.2-1B")
    assert response.status_code == 201
    assert response.json()["config"]["base_model"] == "meta-llama/Llama-3.2-1B"
    # Allowing the hub opens the hub, not the disk: paths outside the roots stay refused.
    response = api_start(ml_engineer_client, snapshot, str(place["outside"]))
    assert response.json()["errors"] == {"base_model": NOT_ALLOWED}


def queued_run(snapshot, config: dict, **fields) -> TrainingRun:
    """A queued row as an older version (or a hand-edited database) may have left it, bypassing run_start."""
    return TrainingRun.objects.create(
        project_id=snapshot.project_id, kind=fields.pop("kind", Kind.DPO), config=config, snapshot=snapshot,
        time_limit_seconds=60, **fields,
    )  # fmt: skip


@pytest.mark.parametrize(
    "case", ["another project's run", "an existing folder outside the roots", "a link under a root to a folder outside"]
)
def test_the_worker_checks_again_and_refuses_before_loading(place, case, snapshot, monkeypatch):
    loaded = []
    monkeypatch.setattr("trainer.services.execute._train", lambda **kw: loaded.append(kw))
    run = queued_run(snapshot, {"base_model": refused_values(place)[case]})
    assert run_execute(run_id=run.pk) == Status.FAILED
    run.refresh_from_db()
    assert run.error == f"Refused: base_model: {NOT_ALLOWED}"
    assert loaded == []


def test_the_worker_loads_the_resolved_folder_of_an_allowed_model(place, snapshot, monkeypatch):
    loaded = []

    def fake_train(*, run, config, files, output_dir, progress):
        loaded.append(config["base_model"])
        checkpoint_dir(run=run).mkdir(parents=True)
        return {}

    monkeypatch.setattr("trainer.services.execute._train", fake_train)
    own = place["own_run"]
    run = queued_run(snapshot, {"base_model": f"run:{own.pk}"})
    assert run_execute(run_id=run.pk) == Status.SUCCEEDED
    assert loaded == [str(Path(os.path.realpath(checkpoint_dir(run=own))))]
    run.refresh_from_db()
    assert run.config["base_model"] == f"run:{own.pk}"  # the row keeps the name; lineage reads it


def test_the_worker_refuses_a_reward_model_of_another_project(place, snapshot, monkeypatch):
    monkeypatch.setattr("trainer.services.execute._train", lambda **kw: pytest.fail("must not train"))
    run = queued_run(snapshot, {"base_model": "tiny"}, kind=Kind.PPO, reward_model=place["other_run"])
    assert run_execute(run_id=run.pk) == Status.FAILED
    run.refresh_from_db()
    assert run.error == f"Refused: reward_model: {NOT_ALLOWED}"


def test_the_worker_goes_offline_unless_hub_models_are_allowed(settings, monkeypatch):
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled
    from huggingface_hub.utils import get_session

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    settings.TANDEM_ALLOW_HUB_MODELS = True
    hub_offline_unless_allowed()
    assert constants.is_offline_mode() is False
    settings.TANDEM_ALLOW_HUB_MODELS = False
    hub_offline_unless_allowed()
    assert constants.is_offline_mode() is True and os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(OfflineModeIsEnabled):  # refused before any connection is tried
        get_session().get("https://huggingface.co/api/models/gpt2")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tiny\x00", NOT_ALLOWED),
        ("x" * 5000, NOT_ALLOWED),
        ("run:" + "9" * 5000, NOT_ALLOWED),
        ("run:1x", NOT_ALLOWED),
        ("", NOT_ALLOWED),
        ("no such folder", NOT_A_MODEL),  # under a root: only the roots' contents are told apart
    ],
)
def test_odd_values_are_refused_without_an_error_of_their_own(place, value, message):
    from trainer.configs import ConfigError
    from trainer.model_paths import model_resolve

    with pytest.raises(ConfigError) as refused:
        model_resolve(value=value, project_id=place["own_run"].project_id)
    assert refused.value.errors == {"base_model": message}


def test_a_path_outside_the_roots_is_refused_without_touching_the_disk(place, monkeypatch):
    """Not even the time an answer takes can depend on what is outside the roots: nothing there is looked at."""
    from trainer.configs import ConfigError
    from trainer.model_paths import model_resolve

    looked_at = []
    real_lstat, real_stat = os.lstat, os.stat
    monkeypatch.setattr(
        os, "lstat", lambda path, *a, **kw: (looked_at.append(str(path)), real_lstat(path, *a, **kw))[1]
    )
    monkeypatch.setattr(os, "stat", lambda path, *a, **kw: (looked_at.append(str(path)), real_stat(path, *a, **kw))[1])
    for value in (str(place["outside"]), "/etc/ssl", "/nonexistent/x", "../outside/secret-model"):
        with pytest.raises(ConfigError):
            model_resolve(value=value, project_id=place["own_run"].project_id)
    outside = place["outside"].parent
    assert not [p for p in looked_at if p.startswith((str(outside), "/etc/ssl", "/nonexistent"))], looked_at


# --- checkpoint:ID ------------------------------------------------------------------------------------------------


def saved_checkpoint(run: TrainingRun, step: int, *, final: bool = False, **fields):
    """A Checkpoint row with a model folder (a config.json) under the run's output, as the worker records one."""
    from django.conf import settings

    from trainer.models import Checkpoint

    folder = Path(settings.ARTIFACTS_DIR) / run.output_dir / "checkpoints" / f"step-{step}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return Checkpoint.objects.create(
        run=run, step=step, folder=str(folder.relative_to(settings.ARTIFACTS_DIR)), final=final, **fields
    )


def test_a_checkpoint_of_a_run_of_the_project_is_accepted_and_kept_by_name(
    place, ml_engineer_client, snapshot, sent, monkeypatch
):
    from django.conf import settings

    lost = finished_reward_model(snapshot, status=Status.LOST)  # a lost run keeps the checkpoints it reached
    checkpoint = saved_checkpoint(lost, 4)
    response = api_start(ml_engineer_client, snapshot, f"checkpoint:{checkpoint.pk}")
    assert response.status_code == 201, response.json()
    assert response.json()["config"]["base_model"] == f"checkpoint:{checkpoint.pk}"

    loaded = []

    def fake_train(*, run, config, files, output_dir, progress):
        loaded.append(config["base_model"])
        checkpoint_dir(run=run).mkdir(parents=True)
        return {}

    monkeypatch.setattr("trainer.services.execute._train", fake_train)
    run = queued_run(snapshot, {"base_model": f"checkpoint:{checkpoint.pk}"})
    assert run_execute(run_id=run.pk) == Status.SUCCEEDED
    assert loaded == [os.path.realpath(Path(settings.ARTIFACTS_DIR) / checkpoint.folder)]


def test_checkpoints_that_are_not_this_projects_or_have_no_files_read_like_missing_ones(place, snapshot):
    from django.conf import settings
    from django.utils import timezone

    from trainer.configs import ConfigError
    from trainer.model_paths import model_resolve

    other = saved_checkpoint(place["other_run"], 1)
    deleted = saved_checkpoint(place["own_run"], 1, deleted_at=timezone.now())
    moved = saved_checkpoint(place["own_run"], 2)
    shutil.rmtree(Path(settings.ARTIFACTS_DIR) / moved.folder)
    escaping = saved_checkpoint(place["own_run"], 3)
    type(escaping).objects.filter(pk=escaping.pk).update(folder=str(place["outside"]))  # absolute: outside
    dotdot = saved_checkpoint(place["own_run"], 5)
    type(dotdot).objects.filter(pk=dotdot.pk).update(folder="../outside/secret-model")
    values = [f"checkpoint:{c.pk}" for c in (other, deleted, moved, escaping, dotdot)]
    values += ["checkpoint:999999", "checkpoint:1x", "checkpoint:", "checkpoint:" + "9" * 40]
    for value in values:
        with pytest.raises(ConfigError) as refused:
            model_resolve(value=value, project_id=snapshot.project_id)
        assert refused.value.errors == {"base_model": NOT_ALLOWED}, value


def test_run_id_loads_the_final_checkpoint_row_while_its_files_are_there(place, snapshot):
    from django.conf import settings

    from trainer.model_paths import model_resolve

    own = place["own_run"]
    final = saved_checkpoint(own, 10, final=True)
    resolved = model_resolve(value=f"run:{own.pk}", project_id=snapshot.project_id)
    assert resolved.stored == f"run:{own.pk}"
    assert resolved.load == os.path.realpath(Path(settings.ARTIFACTS_DIR) / final.folder)
    shutil.rmtree(Path(settings.ARTIFACTS_DIR) / final.folder)  # then the run's own output folder, as before
    resolved = model_resolve(value=f"run:{own.pk}", project_id=snapshot.project_id)
    assert resolved.load == os.path.realpath(checkpoint_dir(run=own))


def test_a_checkpoint_whose_weights_link_to_another_runs_is_refused(place, snapshot):
    from django.conf import settings

    from trainer.configs import ConfigError
    from trainer.model_paths import model_resolve

    theirs = saved_checkpoint(place["other_run"], 1)
    (Path(settings.ARTIFACTS_DIR) / theirs.folder / "model.safetensors").write_bytes(b"weights")
    ours = saved_checkpoint(place["own_run"], 1)
    (Path(settings.ARTIFACTS_DIR) / ours.folder / "model.safetensors").symlink_to(
        Path(settings.ARTIFACTS_DIR) / theirs.folder / "model.safetensors"
    )
    with pytest.raises(ConfigError) as refused:
        model_resolve(value=f"checkpoint:{ours.pk}", project_id=snapshot.project_id)
    assert refused.value.errors == {"base_model": NOT_ALLOWED}
