"""The runs API and the services behind it: validation before anything is queued, roles, reward models, tampered
snapshots, reading runs and their metrics, cancelling. The task is never run here (see test_e2e_training.py):
what is checked is whether it was sent, and with what."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.services import member_add
from config.celery import app
from rewards.selectors import dataset_files
from tests.factories import ProjectFactory, UserFactory
from tests.trainer.runs_fixtures import finished_reward_model, make_snapshot
from trainer import configs
from trainer.models import Kind, RunMetric, Status, TrainingRun
from trainer.tasks import mark_lost_runs_task, run_training_task

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts", "model_roots")]
RUNS = "/api/v1/runs/"


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    """Every run_training message the code sends (instead of a broker): args and options."""
    calls = []
    monkeypatch.setattr(
        run_training_task, "apply_async", lambda args=None, **options: calls.append({"args": args, **options})
    )
    return calls


def start(client, snapshot, *, kind="reward_model", config=None, **extra):
    body = {"kind": kind, "snapshot": snapshot.pk, "config": {"base_model": "tiny", **(config or {})}, **extra}
    return client.post(RUNS, body, format="json")


def test_model_kinds_are_the_configs_kinds():
    assert tuple(Kind.values) == configs.KINDS


def test_training_goes_to_the_gpu_queue_and_the_reaper_to_default():
    router = app.amqp.router
    assert router.route({}, "trainer.run_training")["queue"].name == "gpu"
    reaper = router.route({"queue": mark_lost_runs_task.queue}, "trainer.mark_lost_runs")
    assert reaper["queue"].name == "default"
    assert run_training_task.acks_late is True
    assert run_training_task.reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    beat = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    assert beat["trainer.mark_lost_runs"]["options"]["queue"] == "default"


def test_an_ml_engineer_starts_a_run_and_it_is_sent_after_commit(
    ml_engineer_client, ml_engineer, snapshot, sent, model_roots, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = start(ml_engineer_client, snapshot, config={"learning_rate": 5e-5, "max_steps": 3})
        assert sent == []  # nothing leaves before the transaction commits
    assert response.status_code == 201, response.json()
    body = response.json()
    run = TrainingRun.objects.get(pk=body["id"])
    assert (run.status, run.kind, run.created_by, run.snapshot, run.project_id) == (
        Status.QUEUED,
        Kind.REWARD_MODEL,
        ml_engineer,
        snapshot,
        snapshot.project_id,
    )
    # The stored config is the complete, validated one.
    assert run.config == configs.validate_config(
        "reward_model", {"base_model": str(model_roots / "tiny"), "learning_rate": 5e-5, "max_steps": 3}
    )
    assert body["config"]["epochs"] == configs.defaults("reward_model")["epochs"]
    assert run.output_dir == f"runs/{run.pk}"
    assert body["page_url"] == f"/runs/{run.pk}/"
    for callback in callbacks:
        callback()
    assert len(sent) == 1
    assert sent[0]["args"] == [run.pk]
    assert sent[0]["task_id"] == run.celery_task_id
    assert sent[0]["soft_time_limit"] > run.time_limit_seconds


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"learning_rate": -1}, "learning_rate"),
        ({"epochs": "many"}, "epochs"),
        ({"beta": 0.2}, "beta"),  # a DPO setting on a reward-model run
        ({"base_model": ""}, "base_model"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_an_invalid_config_is_refused_before_anything_is_queued(
    ml_engineer_client, snapshot, sent, config, field, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = start(ml_engineer_client, snapshot, config=config)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_config"
    assert field in body["errors"], body
    assert TrainingRun.objects.count() == 0
    assert sent == []


def test_bad_requests_are_400_with_a_code(ml_engineer_client, snapshot, sent):
    for body in (
        {"kind": "sft", "snapshot": snapshot.pk, "config": {"base_model": "m"}},
        {"kind": "dpo", "snapshot": 999999, "config": {"base_model": "m"}},
        {"kind": "dpo", "snapshot": snapshot.pk, "config": "lr=1"},
        {"kind": "dpo"},
    ):
        response = ml_engineer_client.post(RUNS, body, format="json")
        assert response.status_code == 400, body
        assert "code" in response.json()
    assert TrainingRun.objects.count() == 0
    assert sent == []


def test_leads_annotators_and_strangers_cannot_start_runs(
    lead_client, annotator_client, stranger_client, snapshot, sent
):
    for client in (lead_client, annotator_client):
        response = start(client, snapshot)
        assert response.status_code == 403
        assert response.json()["code"] == "not_allowed"
    # No role in the snapshot's project: it reads as a missing snapshot.
    response = start(stranger_client, snapshot)
    assert response.status_code == 400 and response.json()["snapshot"] == [f"No dataset snapshot {snapshot.pk}."]
    assert TrainingRun.objects.count() == 0
    assert sent == []


def test_an_ml_engineer_of_another_project_cannot_start_runs_here(snapshot, sent):
    other = ProjectFactory(name="Other")
    user = UserFactory(username="other-mle")
    member_add(project=other, username=user.username, role="ml_engineer")
    client = APIClient()
    client.force_authenticate(user)
    assert start(client, snapshot).status_code == 400  # another project's snapshot reads as a missing one
    assert sent == []


def test_a_superuser_may_start_runs(superuser, snapshot, sent, django_capture_on_commit_callbacks):
    client = APIClient()
    client.force_authenticate(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        assert start(client, snapshot).status_code == 201
    assert len(sent) == 1


def test_ppo_and_rloo_need_a_succeeded_reward_model_of_the_same_project(ml_engineer_client, project, snapshot, sent):
    failed = finished_reward_model(snapshot, status=Status.FAILED)
    other_project_rm = finished_reward_model(make_snapshot(ProjectFactory(name="Elsewhere")))
    dpo_run = TrainingRun.objects.create(
        project=project, kind=Kind.DPO, status=Status.SUCCEEDED, config={}, snapshot=snapshot, time_limit_seconds=1
    )
    for kind in ("ppo", "rloo"):
        for extra, phrase in (
            ({}, "needs a succeeded reward-model run"),
            ({"reward_model_run": failed.pk}, "must have succeeded"),
            ({"reward_model_run": other_project_rm.pk}, f"No run {other_project_rm.pk}."),
            ({"reward_model_run": dpo_run.pk}, "not a reward model"),
            ({"reward_model_run": 999999}, "No run"),
        ):
            response = start(ml_engineer_client, snapshot, kind=kind, **extra)
            assert response.status_code == 400, (kind, extra)
            assert phrase in str(response.json()), (kind, extra, response.json())
    # A reward model on a DPO run is a mistake too.
    good = finished_reward_model(snapshot)
    response = start(ml_engineer_client, snapshot, kind="dpo", reward_model_run=good.pk)
    assert response.json()["code"] == "invalid_config"
    assert response.json()["errors"] == {
        "reward_model_run": "Only PPO and RLOO runs use a reward model; a dpo run does not."
    }
    assert TrainingRun.objects.filter(status=Status.QUEUED).count() == 0
    assert sent == []


def test_ppo_with_a_succeeded_reward_model_starts(
    ml_engineer_client, snapshot, sent, django_capture_on_commit_callbacks
):
    reward_model = finished_reward_model(snapshot)
    with django_capture_on_commit_callbacks(execute=True):
        response = start(ml_engineer_client, snapshot, kind="ppo", reward_model_run=reward_model.pk)
    assert response.status_code == 201, response.json()
    assert response.json()["reward_model"] == reward_model.pk
    assert len(sent) == 1


def test_a_reward_model_whose_checkpoint_is_gone_is_refused(ml_engineer_client, snapshot, sent):
    import shutil

    from trainer.services.runs import checkpoint_dir

    reward_model = finished_reward_model(snapshot)
    shutil.rmtree(checkpoint_dir(run=reward_model))
    response = start(ml_engineer_client, snapshot, kind="ppo", reward_model_run=reward_model.pk)
    assert response.status_code == 400
    assert "no checkpoint" in response.json()["detail"]
    assert sent == []


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_a_tampered_snapshot_is_refused(ml_engineer_client, snapshot, sent, change):
    train = dataset_files(snapshot=snapshot)["train"]
    if change == "edit":
        train.write_text(train.read_text().replace('"chosen"', '"chosen" ', 1))
    else:
        train.unlink()
    response = start(ml_engineer_client, snapshot)
    assert response.status_code == 409
    assert response.json()["code"] == "dataset_tampered"
    assert "train" in response.json()["detail"]
    assert TrainingRun.objects.count() == 0
    assert sent == []


def test_a_broker_that_refuses_the_message_leaves_a_failed_run_not_a_queued_one(
    ml_engineer_client, snapshot, monkeypatch, settings, django_capture_on_commit_callbacks
):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(run_training_task, "apply_async", refuse)
    settings.TANDEM_OUTBOX_MAX_ATTEMPTS = 2
    with django_capture_on_commit_callbacks(execute=True):
        response = start(ml_engineer_client, snapshot)
    assert response.status_code == 201
    # The task outbox retries with back-off; meanwhile the run says why it is not running (tests/core/test_outbox.py).
    queue = ml_engineer_client.get(f"{RUNS}{response.json()['id']}/").json()["queue_state"]
    assert queue["state"] == "waiting_for_broker" and queue["attempts"] == 1
    assert queue["last_error"] == "ConnectionError: broker unreachable"
    call_command("drain_outbox", "--all", stdout=StringIO())  # the second attempt is the last one
    run = TrainingRun.objects.get(pk=response.json()["id"])
    assert run.status == Status.FAILED
    assert run.error.startswith("Failed to queue: ConnectionError: broker unreachable")


# --- Reading runs ----------------------------------------------------------------------------------------------


@pytest.fixture
def run(snapshot, ml_engineer):
    return TrainingRun.objects.create(
        project_id=snapshot.project_id,
        kind=Kind.DPO,
        status=Status.RUNNING,
        config=configs.validate_config("dpo", {"base_model": "m"}),
        snapshot=snapshot,
        created_by=ml_engineer,
        time_limit_seconds=600,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        step=5,
        total_steps=20,
        eta=timezone.now() + timedelta(seconds=90),
        lineage={"run": {"id": 0}},
    )


def test_ml_engineers_and_leads_read_runs_annotators_and_strangers_do_not(
    ml_engineer_client, lead_client, annotator_client, stranger_client, run
):
    for client in (ml_engineer_client, lead_client):
        listed = client.get(RUNS, {"project": run.project_id})
        assert listed.status_code == 200
        assert [r["id"] for r in listed.json()] == [run.pk]
        detail = client.get(f"{RUNS}{run.pk}/").json()
        assert (detail["status"], detail["step"], detail["total"], detail["progress"]) == ("running", 5, 20, 0.25)
        assert 60 < detail["eta_seconds"] <= 90
        assert detail["lineage"] == {"run": {"id": 0}}
    for client, status in ((annotator_client, 403), (stranger_client, 404)):  # no role there: as if missing
        assert client.get(RUNS).json() == []
        assert client.get(f"{RUNS}{run.pk}/").status_code == status
        assert client.get(f"{RUNS}{run.pk}/metrics/").status_code == status
    assert ml_engineer_client.get(f"{RUNS}999999/").status_code == 404


def test_list_filters(ml_engineer_client, run, snapshot):
    finished_reward_model(snapshot)
    assert {r["kind"] for r in ml_engineer_client.get(RUNS).json()} == {"dpo", "reward_model"}
    assert [r["kind"] for r in ml_engineer_client.get(RUNS, {"kind": "dpo"}).json()] == ["dpo"]
    assert [r["status"] for r in ml_engineer_client.get(RUNS, {"status": "succeeded"}).json()] == ["succeeded"]
    assert ml_engineer_client.get(RUNS, {"project": run.project_id + 1000}).json() == []
    assert ml_engineer_client.get(RUNS, {"project": "x"}).status_code == 400
    for bad in ({"status": "nope"}, {"kind": "ppo\x00"}, {"status": "\x00"}):  # NUL: PostgreSQL refuses it in text
        refused = ml_engineer_client.get(RUNS, bad)
        assert refused.status_code == 400 and refused.json()["code"] == "invalid", bad


def test_metrics_after_a_step_for_the_live_charts(ml_engineer_client, run):
    RunMetric.objects.bulk_create(
        [
            RunMetric(run=run, step=s, name=n, value=s * (1 if n == "loss" else 0.1))
            for s in range(1, 6)
            for n in ("loss", "kl")
        ]
    )
    body = ml_engineer_client.get(f"{RUNS}{run.pk}/metrics/").json()
    assert body["series"]["loss"] == [[s, s] for s in range(1, 6)]
    assert body["last_step"] == 5
    assert (body["status"], body["step"], body["total"], body["more"]) == ("running", 5, 20, False)
    RunMetric.objects.create(run=run, step=6, name="loss", value=0.5)
    newer = ml_engineer_client.get(f"{RUNS}{run.pk}/metrics/", {"after": 5}).json()
    assert newer["series"] == {"loss": [[6, 0.5]]}
    assert newer["last_step"] == 6
    idle = ml_engineer_client.get(f"{RUNS}{run.pk}/metrics/", {"after": 6}).json()
    assert (idle["series"], idle["last_step"]) == ({}, 6)
    assert ml_engineer_client.get(f"{RUNS}{run.pk}/metrics/", {"after": "soon"}).status_code == 400


def test_metric_pages_end_on_whole_steps(run):
    from trainer.selectors import run_metrics_after

    RunMetric.objects.bulk_create(
        [RunMetric(run=run, step=s, name=n, value=1.0) for s in range(1, 11) for n in ("a", "b", "c")]
    )
    page = run_metrics_after(run=run, limit=10)
    assert page.more and page.last_step == 3  # 9 points: step 4 would be cut in half
    assert {len(points) for points in page.series.values()} == {3}
    rest = run_metrics_after(run=run, after=page.last_step, limit=100)
    assert not rest.more and rest.last_step == 10 and len(rest.series["a"]) == 7


# --- Cancelling ------------------------------------------------------------------------------------------------


def test_cancelling_a_running_run_asks_it_to_stop(ml_engineer_client, lead_client, run):
    assert lead_client.post(f"{RUNS}{run.pk}/cancel/").status_code == 403
    response = ml_engineer_client.post(f"{RUNS}{run.pk}/cancel/")
    assert response.status_code == 202
    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == (Status.RUNNING, True)


def test_cancelling_a_queued_run_cancels_it_at_once_and_the_worker_will_not_start_it(ml_engineer_client, run):
    from trainer.services.execute import run_execute

    TrainingRun.objects.filter(pk=run.pk).update(status=Status.QUEUED)
    response = ml_engineer_client.post(f"{RUNS}{run.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    # The message still in the queue reaches a worker: the run's row says no.
    assert run_execute(run_id=run.pk, task_id="t") == "cancelled"
    run.refresh_from_db()
    assert run.started_at is not None and run.status == Status.CANCELLED  # untouched by the worker
    again = ml_engineer_client.post(f"{RUNS}{run.pk}/cancel/")
    assert (again.status_code, again.json()["code"]) == (409, "not_cancellable")


# --- Lost runs -------------------------------------------------------------------------------------------------


def test_the_periodic_task_marks_runs_without_a_heartbeat_lost(run, snapshot, settings):
    settings.TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS = 60
    now = timezone.now()
    stale = run
    TrainingRun.objects.filter(pk=stale.pk).update(heartbeat_at=now - timedelta(seconds=61))
    fresh = TrainingRun.objects.create(
        project_id=snapshot.project_id, kind=Kind.DPO, status=Status.RUNNING, config={}, snapshot=snapshot,
        time_limit_seconds=600, started_at=now - timedelta(seconds=100), heartbeat_at=now - timedelta(seconds=5),
    )  # fmt: skip
    queued = TrainingRun.objects.create(
        project_id=snapshot.project_id, kind=Kind.DPO, config={}, snapshot=snapshot, time_limit_seconds=600
    )
    stuck = TrainingRun.objects.create(
        project_id=snapshot.project_id, kind=Kind.DPO, status=Status.RUNNING, config={}, snapshot=snapshot,
        time_limit_seconds=600, started_at=now - timedelta(seconds=700), heartbeat_at=now,
    )  # fmt: skip
    assert sorted(mark_lost_runs_task.apply().get()) == sorted([stale.pk, stuck.pk])
    statuses = dict(TrainingRun.objects.values_list("pk", "status"))
    assert statuses == {stale.pk: "lost", fresh.pk: "running", queued.pk: "queued", stuck.pk: "failed"}
    stale.refresh_from_db()
    assert stale.error.startswith("Lost: no heartbeat since") and stale.finished_at is not None
    assert "Time limit of 600 s exceeded" in TrainingRun.objects.get(pk=stuck.pk).error
    assert mark_lost_runs_task.apply().get() == []  # nothing twice


def test_ids_past_bigint_are_refused_not_500(ml_engineer_client, snapshot, run, sent):
    huge = 2**70
    for path in (f"{RUNS}{huge}/", f"{RUNS}{huge}/metrics/"):
        assert ml_engineer_client.get(path).status_code == 404
    assert ml_engineer_client.post(f"{RUNS}{huge}/cancel/").status_code == 404
    assert ml_engineer_client.get(RUNS, {"project": huge}).status_code == 400
    assert ml_engineer_client.get(f"{RUNS}{run.pk}/metrics/", {"after": huge}).status_code == 400
    for extra in ({"snapshot": huge}, {"reward_model_run": huge}, {"based_on": huge}):
        body = {"kind": "ppo", "snapshot": snapshot.pk, "config": {"base_model": "m"}, **extra}
        assert ml_engineer_client.post(RUNS, body, format="json").status_code == 400, extra
    assert sent == []


def test_a_generate_run_is_not_started_on_a_snapshot(ml_engineer_client, snapshot, sent):
    """Generate runs sample an evaluation set (evaluation's API): the runs API says where, and stores nothing."""
    response = ml_engineer_client.post(
        RUNS, {"kind": "generate", "snapshot": snapshot.pk, "config": {"model": "tiny"}}, format="json"
    )
    assert response.status_code == 400
    assert "/api/v1/eval-sets/{id}/generations/" in response.json()["errors"]["kind"]
    assert TrainingRun.objects.count() == 0 and sent == []
