"""Bounds on the sizes that multiply a run's work: the server's limits (TANDEM_RUN_LIMITS), a project's overrides
(ProjectRunLimits, set by superusers in the admin), and refusals with the field and the limit through the API, the
admin's start form and `start_run`, with nothing stored or queued."""

from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.test import Client

from tests.factories import ProjectFactory
from tests.trainer.runs_fixtures import make_snapshot
from trainer import configs
from trainer.confinement import run_limits
from trainer.models import ProjectRunLimits, TrainingRun

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts", "model_roots")]
RUNS = "/api/v1/runs/"
START = "/admin/trainer/trainingrun/start/"
LIMITS_ADMIN = "/admin/trainer/projectrunlimits/"


def api_start(client, snapshot, kind="reward_model", **config):
    return client.post(
        RUNS, {"kind": kind, "snapshot": snapshot.pk, "config": {"base_model": "tiny", **config}}, format="json"
    )


def over_limit(limit: int, field: str) -> str:
    return f"Must be at most {limit}: this project's run limit for {field} (a superuser can change it)."


def staff(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def test_every_bounded_field_has_a_server_default_and_a_project_override():
    model_fields = {f.name for f in ProjectRunLimits._meta.get_fields()} - {"id", "project", "updated_at"}
    assert set(configs.RUN_LIMIT_FIELDS) == set(django_settings.TANDEM_RUN_LIMITS) == model_fields
    # Each bounds a real integer field of some kind, and no default is above what a config can hold anyway.
    for name in configs.RUN_LIMIT_FIELDS:
        assert any(name in configs.fields(kind) for kind in configs.KINDS)
        assert django_settings.TANDEM_RUN_LIMITS[name] <= configs.hard_max(name)
    assert django_settings.TANDEM_RUN_LIMITS["time_limit_seconds"] <= 24 * 3600  # one GPU-day


@pytest.mark.parametrize("kind", configs.KINDS)
def test_each_kind_s_defaults_fit_the_default_limits(kind, project):
    config = configs.validate_config(kind, {"model" if kind == "generate" else "base_model": "m"})
    assert configs.limit_errors(config, run_limits(project_id=project.pk)) == {}


def test_max_steps_over_the_limit_is_refused_with_the_field_and_nothing_queued(ml_engineer_client, snapshot, sent):
    limit = django_settings.TANDEM_RUN_LIMITS["max_steps"]
    response = api_start(ml_engineer_client, snapshot, max_steps=limit + 1)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_config"
    assert response.json()["errors"] == {"max_steps": over_limit(limit, "max_steps")}
    assert TrainingRun.objects.count() == 0 and sent == []
    assert api_start(ml_engineer_client, snapshot, max_steps=limit).status_code == 201


def test_a_model_refusal_and_a_limit_are_reported_together(ml_engineer_client, snapshot, sent):
    response = api_start(ml_engineer_client, snapshot, base_model="/etc", epochs=1000)
    assert set(response.json()["errors"]) == {"base_model", "epochs"}
    assert sent == []


def _value_and_kind(field: str) -> tuple[str, int]:
    """A kind with `field` and a value for it that passes validation (its default, or 2 where that is 1 or none)."""
    kind = next(kind for kind in configs.KINDS if field in configs.fields(kind))
    default = configs.fields(kind)[field].default
    return kind, default if default and default > 1 else 2


@pytest.mark.parametrize("field", configs.RUN_LIMIT_FIELDS)
def test_every_bounded_field_is_refused_over_its_limit(field, settings, ml_engineer_client, snapshot, sent):
    kind, value = _value_and_kind(field)
    settings.TANDEM_RUN_LIMITS = {**settings.TANDEM_RUN_LIMITS, field: value - 1}
    response = api_start(ml_engineer_client, snapshot, kind, **{field: value})
    assert response.status_code == 400
    # PPO and RLOO runs also need a reward model: every problem comes back in the same answer.
    expected = {field: over_limit(value - 1, field)}
    if kind in configs.NEEDS_REWARD_MODEL:
        expected["reward_model_run"] = f"A {kind} run needs a succeeded reward-model run to score its samples."
    assert response.json()["errors"] == expected
    assert TrainingRun.objects.count() == 0 and sent == []


def test_a_project_override_raises_and_lowers_the_limit_for_that_project_only(
    ml_engineer_client, ml_engineer, snapshot, sent
):
    from annotation.services import member_add

    server = django_settings.TANDEM_RUN_LIMITS["max_steps"]
    other = ProjectFactory(name="Other")
    member_add(project=other, username=ml_engineer.username, role="ml_engineer")
    other_snapshot = make_snapshot(other)

    ProjectRunLimits.objects.create(project=snapshot.project, max_steps=server * 2)
    assert api_start(ml_engineer_client, snapshot, max_steps=server + 1).status_code == 201
    refused = api_start(ml_engineer_client, other_snapshot, max_steps=server + 1)
    assert refused.json()["errors"] == {"max_steps": over_limit(server, "max_steps")}

    ProjectRunLimits.objects.filter(project=snapshot.project).update(max_steps=5)
    refused = api_start(ml_engineer_client, snapshot, max_steps=6)
    assert refused.json()["errors"] == {"max_steps": over_limit(5, "max_steps")}
    assert api_start(ml_engineer_client, other_snapshot, max_steps=6).status_code == 201
    # Fields left empty keep the server's limit.
    assert run_limits(project_id=snapshot.project_id)["epochs"] == django_settings.TANDEM_RUN_LIMITS["epochs"]
    assert TrainingRun.objects.count() == 2  # the two accepted, none of the refused


def test_the_admin_start_form_and_start_run_refuse_over_the_limit(ml_engineer, snapshot, sent):
    ProjectRunLimits.objects.create(project=snapshot.project, epochs=3)
    page = staff(ml_engineer).post(
        START, {"kind": "dpo", "snapshot": snapshot.pk, "base_model": "tiny", "settings": "epochs=4"}
    )
    assert page.status_code == 200
    assert page.context["form"].errors["settings"] == [f"epochs: {over_limit(3, 'epochs')}"]
    with pytest.raises(CommandError, match=r"epochs: Must be at most 3: this project's run limit"):
        call_command(
            "start_run", "--kind", "dpo", "--snapshot", str(snapshot.pk), "--base-model", "tiny", "--set", "epochs=4",
            stdout=StringIO(),
        )  # fmt: skip
    assert TrainingRun.objects.count() == 0 and sent == []


def test_superusers_set_a_project_s_limits_in_the_admin(superuser, project, ml_engineer_client, snapshot, sent):
    root = Client()
    root.force_login(superuser)
    assert root.get(LIMITS_ADMIN).status_code == 200
    response = root.post(LIMITS_ADMIN + "add/", {"project": project.pk, "max_steps": "10", "epochs": ""})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert run_limits(project_id=project.pk)["max_steps"] == 10
    assert api_start(ml_engineer_client, snapshot, max_steps=11).json()["errors"]["max_steps"] == over_limit(
        10, "max_steps"
    )
    # No limit above what a config can hold at all.
    limits = ProjectRunLimits.objects.get()
    too_big = root.post(f"{LIMITS_ADMIN}{limits.pk}/change/", {"project": project.pk, "max_steps": str(10**8)})
    assert too_big.status_code == 200
    assert "max_steps" in too_big.context["adminform"].form.errors


@pytest.mark.parametrize("role", ["ml_engineer", "lead"])
def test_only_superusers_reach_the_limits_admin(role, request, project):
    client = staff(request.getfixturevalue(role))
    limits = ProjectRunLimits.objects.create(project=project, max_steps=10)
    for url in (LIMITS_ADMIN, LIMITS_ADMIN + "add/", f"{LIMITS_ADMIN}{limits.pk}/change/"):
        assert client.get(url).status_code == 403
    assert (
        client.post(f"{LIMITS_ADMIN}{limits.pk}/change/", {"project": project.pk, "max_steps": "10000000"}).status_code
        == 403
    )
    limits.refresh_from_db()
    assert limits.max_steps == 10
