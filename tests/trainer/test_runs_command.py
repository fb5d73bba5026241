"""`manage.py start_run`: the same validation as the API (nothing queued on a refusal), --set typed by field, and
--wait following a run to its end with a non-zero exit unless it succeeded (with a real worker in
test_e2e_training.py; here the run's row is moved along by the test)."""

import threading
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from rewards.selectors import dataset_files
from tests.trainer.runs_fixtures import finished_reward_model, make_snapshot
from trainer.models import Status, TrainingRun

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts", "model_roots")]


def start_run(*args: str) -> str:
    out = StringIO()
    call_command("start_run", *args, stdout=out)
    return out.getvalue()


def test_start_run_queues_a_validated_run(snapshot, sent, ml_engineer, model_roots, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        out = start_run(
            "--kind", "dpo", "--snapshot", str(snapshot.pk), "--base-model", "tiny",
            "--set", "beta=0.2", "--set", "lora=true", "--set", "max_steps=none", "--user", "mle",
        )  # fmt: skip
    run = TrainingRun.objects.get()
    assert out.startswith(f"Run {run.pk} queued (DPO on dataset snapshot {snapshot.pk}).")
    assert (run.config["beta"], run.config["lora"], run.config["max_steps"]) == (0.2, True, None)
    assert run.config["base_model"] == str(model_roots / "tiny")  # stored resolved: the worker needs no cwd
    assert run.created_by == ml_engineer
    assert sent == [[run.pk]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "learning_rate=-3"], "learning_rate: Must be greater than 0"),
        (["--set", "beta=0.1"], "beta: Unknown setting"),
        (["--set", "epochs=two"], "epochs: Expected an integer"),
        (["--set", "nonsense"], "Expected key=value"),
        (["--user", "lead"], "Only the project's ML engineers"),
        (["--user", "nobody"], "No user named 'nobody'"),
        (["--reward-model", "1"], "Only PPO and RLOO runs use a reward model"),
    ],
)
def test_start_run_refuses_and_queues_nothing(snapshot, sent, lead, args, message):
    if "--reward-model" in args:
        args = ["--reward-model", str(finished_reward_model(snapshot).pk)]
    with pytest.raises(CommandError, match=message):
        start_run("--kind", "reward_model", "--snapshot", str(snapshot.pk), "--base-model", "m", *args)
    assert not TrainingRun.objects.filter(status=Status.QUEUED).exists()
    assert sent == []


def test_start_run_refuses_ppo_without_a_reward_model_and_a_tampered_snapshot(snapshot, sent):
    with pytest.raises(CommandError, match="needs a succeeded reward-model run"):
        start_run("--kind", "ppo", "--snapshot", str(snapshot.pk), "--base-model", "m")
    with pytest.raises(CommandError, match="No dataset snapshot 999999"):
        start_run("--kind", "ppo", "--snapshot", "999999", "--base-model", "m")
    dataset_files(snapshot=snapshot)["manifest"].write_text("{}")
    with pytest.raises(CommandError, match=r"manifest\.json was changed"):
        start_run("--kind", "dpo", "--snapshot", str(snapshot.pk), "--base-model", "m")
    assert TrainingRun.objects.count() == 0
    assert sent == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("final", ["succeeded", "failed"])
def test_wait_prints_progress_and_exits_non_zero_unless_it_succeeded(project, sent, final):
    snapshot = make_snapshot(project)

    def worker():
        try:
            move_the_run()
        finally:
            connection.close()  # this thread's own connection, or PostgreSQL keeps the test database open

    def move_the_run():  # what a worker does to the row, in a few steps
        deadline = time.monotonic() + 30
        while not TrainingRun.objects.exists():
            if time.monotonic() > deadline:
                return  # the command failed before it queued anything: the test says why
            time.sleep(0.05)
        run = TrainingRun.objects.get()
        for step in (0, 5, 10):
            time.sleep(0.3)
            TrainingRun.objects.filter(pk=run.pk).update(status=Status.RUNNING, step=step, total_steps=10)
        fields = {"evaluation": {"accuracy": 0.5}} if final == "succeeded" else {"error": "ValueError: boom"}
        TrainingRun.objects.filter(pk=run.pk).update(status=final, **fields)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        args = ["--kind", "dpo", "--snapshot", str(snapshot.pk), "--base-model", "m", "--wait", "--poll", "0.1"]
        if final == "succeeded":
            out = start_run(*args)
            assert 'Evaluation: {"accuracy": 0.5}' in out
        else:
            with pytest.raises(CommandError, match="failed: ValueError: boom"):
                start_run(*args)
    finally:
        thread.join()
