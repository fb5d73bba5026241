"""Every problem of a run start comes back at once (settings, models and limits, the reward model, the snapshot), in
the API, the admin's start form and `start_run`, and nothing is stored or queued: one submit shows them all."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from rewards.selectors import dataset_files
from tests.trainer.runs_fixtures import finished_reward_model
from trainer.model_paths import NOT_ALLOWED
from trainer.models import Status, TrainingRun

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts", "model_roots")]
RUNS = "/api/v1/runs/"
START = "/admin/trainer/trainingrun/start/"
NEEDS_RM = "A ppo run needs a succeeded reward-model run to score its samples."


def over_limit(field: str) -> str:
    from django.conf import settings

    limit = settings.TANDEM_RUN_LIMITS[field]
    return f"Must be at most {limit}: this project's run limit for {field} (a superuser can change it)."


def tamper(snapshot) -> None:
    train = dataset_files(snapshot=snapshot)["train"]
    train.write_text(train.read_text() + "\n")


# --- API ------------------------------------------------------------------------------------------------------


def test_the_api_reports_a_bad_setting_a_refused_model_a_limit_and_the_reward_model_in_one_answer(
    ml_engineer_client, snapshot, sent
):
    body = {
        "kind": "ppo",
        "snapshot": snapshot.pk,
        "config": {"base_model": "/etc", "learning_rate": -1, "epochs": 1000, "beta": 0.1},
    }
    response = ml_engineer_client.post(RUNS, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_config"
    errors = response.json()["errors"]
    assert errors == {
        "learning_rate": "Must be greater than 0.",
        "beta": "Unknown setting for ppo runs (it is a dpo setting).",
        "base_model": NOT_ALLOWED,
        "epochs": over_limit("epochs"),
        "reward_model_run": NEEDS_RM,
    }
    for message in errors.values():
        assert message in response.json()["detail"]
    assert TrainingRun.objects.count() == 0 and sent == []


def test_a_reward_model_id_that_names_no_run_is_reported_with_the_rest(ml_engineer_client, snapshot, sent):
    body = {"kind": "ppo", "snapshot": snapshot.pk, "reward_model_run": 987654, "config": {"base_model": "tiny"}}
    body["config"]["mini_batch_size"] = 7  # does not divide rollout_batch_size (64)
    response = ml_engineer_client.post(RUNS, body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "reward_model_run": "No run 987654.",
        "mini_batch_size": "Must divide rollout_batch_size (64); got 7.",
    }
    assert sent == []


def test_a_tampered_snapshot_stays_409_and_carries_the_other_problems(ml_engineer_client, snapshot, sent):
    tamper(snapshot)
    body = {"kind": "ppo", "snapshot": snapshot.pk, "config": {"base_model": "tiny", "epochs": 0}}
    response = ml_engineer_client.post(RUNS, body, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "dataset_tampered"
    assert response.json()["errors"] == {"epochs": "Must be at least 1.", "reward_model_run": NEEDS_RM}
    # Tampered and nothing else wrong: the answer as before, without `errors`.
    fine = {"kind": "dpo", "snapshot": snapshot.pk, "config": {"base_model": "tiny"}}
    response = ml_engineer_client.post(RUNS, fine, format="json")
    assert response.status_code == 409 and "errors" not in response.json()
    assert TrainingRun.objects.count() == 0 and sent == []


def test_who_may_start_is_still_answered_first(lead_client, snapshot, sent):
    body = {"kind": "ppo", "snapshot": snapshot.pk, "config": {"base_model": "/etc", "learning_rate": -1}}
    response = lead_client.post(RUNS, body, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "not_allowed")
    assert "errors" not in response.json()  # a user who may not start runs learns nothing about the config


# --- Admin start form -----------------------------------------------------------------------------------------


def form_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200
    return {field: list(messages) for field, messages in response.context["form"].errors.items()}


def test_the_start_form_puts_every_problem_on_its_field_at_once(mle_admin, snapshot, sent):
    response = mle_admin.post(
        START,
        {
            "kind": "ppo",
            "snapshot": snapshot.pk,
            "base_model": "/etc",
            "settings": "learning_rate=-1\nepochs=lots\nnot a line\nmax_steps=100000000",
        },
    )
    errors = form_errors(response)
    assert "Nothing was queued. Please correct the 3 fields marked below." in response.content.decode()
    assert errors["base_model"] == [NOT_ALLOWED]
    assert errors["reward_model"] == [NEEDS_RM]
    assert sorted(errors["settings"]) == sorted(
        [
            "learning_rate: Must be greater than 0.",
            "epochs: Expected an integer, got 'lots'.",
            "not a line: Expected key=value.",
            "max_steps: Must be at most 10000000.",
        ]
    )
    assert TrainingRun.objects.count() == 0 and sent == []


def test_the_start_form_shows_a_tampered_snapshot_with_the_other_problems(mle_admin, snapshot, sent):
    tamper(snapshot)
    response = mle_admin.post(START, {"kind": "dpo", "snapshot": snapshot.pk, "base_model": "", "settings": "beta=0"})
    errors = form_errors(response)
    assert errors["snapshot"][0].startswith("Refused: Dataset snapshot")
    assert errors["base_model"] == ["This field is required."]
    assert errors["settings"] == ["beta: Must be greater than 0."]
    assert TrainingRun.objects.count() == 0 and sent == []


def test_a_reward_model_the_form_refuses_queues_nothing_and_the_rest_is_still_checked(mle_admin, snapshot, sent):
    failed = finished_reward_model(snapshot, status=Status.FAILED)  # not offered by the form's list
    response = mle_admin.post(
        START,
        {
            "kind": "dpo",
            "snapshot": snapshot.pk,
            "reward_model": failed.pk,
            "base_model": "tiny",
            "settings": "epochs=0",
        },
    )
    errors = form_errors(response)
    assert len(errors["reward_model"]) == 1 and "Select a valid choice" in errors["reward_model"][0]
    assert errors["settings"] == ["epochs: Must be at least 1."]
    assert not TrainingRun.objects.filter(status=Status.QUEUED).exists() and sent == []
    # The same form with only the reward model wrong still queues nothing.
    response = mle_admin.post(
        START, {"kind": "dpo", "snapshot": snapshot.pk, "reward_model": failed.pk, "base_model": "tiny"}
    )
    assert "reward_model" in form_errors(response)
    assert not TrainingRun.objects.filter(status=Status.QUEUED).exists() and sent == []


# --- start_run ------------------------------------------------------------------------------------------------


def test_start_run_lists_every_problem_at_once(snapshot, sent):
    with pytest.raises(CommandError) as refused:
        call_command(
            "start_run", "--kind", "ppo", "--snapshot", str(snapshot.pk), "--base-model", "/etc",
            "--set", "learning_rate=-3", "--set", "epochs=two", "--set", "epochs_typo=1", "--reward-model", "987654",
            stdout=StringIO(),
        )  # fmt: skip
    assert str(refused.value) == (
        "Invalid configuration; nothing was queued:\n"
        f"  base_model: {NOT_ALLOWED}\n"
        "  epochs: Expected an integer, got 'two'.\n"
        "  epochs_typo: Unknown setting for ppo runs.\n"
        "  learning_rate: Must be greater than 0.\n"
        "  reward_model_run (--reward-model): No run 987654."
    )
    assert TrainingRun.objects.count() == 0 and sent == []


def test_start_run_names_a_tampered_snapshot_and_the_rest(snapshot, sent):
    tamper(snapshot)
    with pytest.raises(CommandError) as refused:
        call_command(
            "start_run", "--kind", "dpo", "--snapshot", str(snapshot.pk), "--base-model", "tiny",
            "--set", "beta=-1", stdout=StringIO(),
        )  # fmt: skip
    message = str(refused.value)
    assert message.startswith("Dataset snapshot") and "Nothing was queued." in message
    assert message.endswith("Also wrong:\n  beta: Must be greater than 0.")
    assert sent == []
