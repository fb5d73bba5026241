"""Runs with num_processes=2 through a real worker: `accelerate launch` starts two gloo processes on this CPU
(tiny model, one torch thread each), rank 0 reports, the worker supervises the group.

Loss tolerance: with the same seed, Accelerate's sharded sampler gives the two ranks the two halves of the batch
the one-process run draws at each step (per-device batch 2 x 2 processes = batch 4), DDP averages the two halves'
gradients (= the full batch's mean gradient) and Trainer logs the mean of the ranks' losses (= the full batch's
mean loss). The runs see the same samples in the same order, so the losses differ only by float32 summation
order (the all-reduce, per-rank batch shapes and padding): measured here they agree to 1e-7. The relative
tolerance of 1e-4 leaves room for that rounding on other CPUs and BLAS builds, and stays well below what a
different data order or an unsynchronised rank gives (one step's loss moves by ~5e-3 on this data; a rank that
trained alone on its half would log a different loss from step 1).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.db import transaction

from tests.fixtures.worker import ROOT, worker_env
from tests.trainer.sft_fixtures import make_sft_snapshot
from tests.trainer.test_e2e_training import LONG, final_run, running_at_step, wait_for
from trainer.launch.config import free_port
from trainer.models import RunMetric, Status, TrainingRun
from trainer.services.runs import run_start
from trainer.tasks import mark_lost_runs_task

pytestmark = [pytest.mark.worker, pytest.mark.multiprocess]
RUNS = "/api/v1/runs/"
COMMON = {"eval_batch_size": 4, "max_length": 64, "max_steps": 3, "learning_rate": 1e-3, "seed": 7}
TOLERANCE = 1e-4
LIMIT = {"time_limit_seconds": 60}


def start(user, snapshot, kind: str, config: dict) -> TrainingRun:
    with transaction.atomic():  # the message is sent when this block commits
        return run_start(kind=kind, snapshot=snapshot, config=config, created_by=user)


def losses(run: TrainingRun) -> dict[int, float]:
    return dict(RunMetric.objects.filter(run=run, name="loss").order_by("step").values_list("step", "value"))


def group_pids(run_id: int) -> list[int]:
    """The processes of a run's group: the launcher and the ranks (both name the run on their command line)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if f"--run-id {run_id}" in line and ("trainer.launch.entry" in line or "accelerate" in line):
            found.append(process.pid)
    return found


def rank_pid(run_id: int, rank: int) -> int | None:
    for pid in group_pids(run_id):
        try:
            process = psutil.Process(pid)
            if "trainer.launch.entry" in " ".join(process.cmdline()) and process.environ().get("RANK") == str(rank):
                return pid
        except psutil.NoSuchProcess:
            continue
    return None


def survivors(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def assert_two_process_run(run: TrainingRun, *, steps: int = 3) -> Path:
    assert run.status == Status.SUCCEEDED, run.error + run.error_traceback
    folder = Path(settings.ARTIFACTS_DIR) / run.output_dir
    assert (folder / "checkpoint" / "config.json").is_file()
    assert (folder / "accelerate_config.yaml").is_file()
    launch = run.lineage["launch"]
    assert (launch["num_processes"], launch["distributed_type"], launch["use_cpu"]) == (2, "MULTI_CPU", True)
    assert "x2 ddp" in run.device
    assert (run.compute["processes"], run.compute["strategy"], run.compute["distributed_type"]) == (
        2,
        "ddp",
        "MULTI_CPU",
    )
    assert run.lineage["run"]["compute"] == run.compute
    assert (folder / "logs" / "rank-0.log").is_file() and (folder / "logs" / "rank-1.log").is_file()
    assert run.step == run.total_steps == steps
    return folder


@pytest.fixture
def sft_snapshot(project):
    return make_sft_snapshot(project, count=24)


@pytest.mark.parametrize("kind", ["reward_model", "dpo", "sft"])
def test_two_processes_train_as_one_with_the_same_global_batch(
    kind,
    celery_worker_process,
    tiny_model_dir,
    ml_engineer,
    request,
):
    # SFT trains on demonstrations; its loss is the mean over the assistant's tokens of the whole global batch
    # (Trainer counts the tokens across processes), so halves of unequal length still average as one batch.
    snapshot = request.getfixturevalue("sft_snapshot" if kind == "sft" else "snapshot")
    base = {"base_model": str(tiny_model_dir), **COMMON}
    single = final_run(start(ml_engineer, snapshot, kind, {**base, "batch_size": 4}).pk, timeout=240)
    assert single.status == Status.SUCCEEDED, single.error + single.error_traceback
    double = final_run(
        start(ml_engineer, snapshot, kind, {**base, "batch_size": 2, "num_processes": 2}).pk, timeout=300
    )
    assert_two_process_run(double)
    one, two = losses(single), losses(double)
    print(f"{kind} losses, one process: {one}; two processes: {two}")
    assert sorted(one) == sorted(two) == [1, 2, 3]
    assert two == pytest.approx(one, rel=TOLERANCE), (one, two)
    assert single.evaluation.keys() == double.evaluation.keys()
    # Only rank 0 reported: one metric row per name and step.
    assert RunMetric.objects.filter(run=double, name="loss").count() == 3


def test_cancel_ends_every_process_of_the_group_within_10_seconds(
    celery_worker_process,
    tiny_model_dir,
    ml_engineer,
    ml_engineer_client,
    snapshot,
    long_runs,
):
    config = {"base_model": str(tiny_model_dir), **LONG, "num_processes": 2}
    run = start(ml_engineer, snapshot, "reward_model", config)
    running_at_step(run.pk, 2, timeout=180)
    pids = wait_for(lambda: (p := group_pids(run.pk)) and len(p) >= 3 and p, timeout=10, what="the group's pids")
    asked = time.monotonic()
    assert ml_engineer_client.post(f"{RUNS}{run.pk}/cancel/").status_code == 202
    wait_for(lambda: not survivors(pids), timeout=10, what=f"the processes {pids} to end")
    assert time.monotonic() - asked <= 10
    run = final_run(run.pk, timeout=10)
    assert run.status == Status.CANCELLED and run.error.startswith("Cancelled at step")
    assert not group_pids(run.pk)
    assert celery_worker_process.alive


def test_a_killed_rank_fails_the_run_with_its_error_within_the_collective_timeout(
    celery_worker_process,
    tiny_model_dir,
    ml_engineer,
    snapshot,
    long_runs,
):
    config = {"base_model": str(tiny_model_dir), **LONG, "num_processes": 2, "collective_timeout_seconds": 20}
    run = start(ml_engineer, snapshot, "reward_model", config)
    running_at_step(run.pk, 2, timeout=180)
    pids = group_pids(run.pk)
    victim = rank_pid(run.pk, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    run = final_run(run.pk, timeout=30)
    assert time.monotonic() - killed <= 20
    assert run.status == Status.FAILED
    assert run.error.startswith(f"Rank 1 (pid {victim}) died"), run.error
    wait_for(lambda: not survivors(pids), timeout=10, what="no survivor of the group")
    assert celery_worker_process.alive


def test_a_killed_worker_takes_its_ranks_with_it_and_the_run_is_lost(
    celery_worker_process, tiny_model_dir, ml_engineer, snapshot, long_runs, settings
):
    settings.TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS = 3
    run = start(ml_engineer, snapshot, "reward_model", {"base_model": str(tiny_model_dir), **LONG, "num_processes": 2})
    running_at_step(run.pk, 2, timeout=180)
    pids = wait_for(lambda: (p := group_pids(run.pk)) and len(p) >= 3 and p, timeout=10, what="the group's pids")
    celery_worker_process.kill()
    wait_for(lambda: not survivors(pids), timeout=10, what=f"the ranks {pids} to follow their worker")
    run = wait_for(
        lambda: (
            (mark_lost_runs_task.apply().get(), TrainingRun.objects.get(pk=run.pk))[1].status == Status.LOST
            and TrainingRun.objects.get(pk=run.pk)
        ),
        timeout=15,
        what="the run to be marked lost",
        every=0.25,
    )
    assert run.error.startswith("Lost: no heartbeat since")


def test_ppo_on_two_processes_succeeds_with_rank_0_reporting(
    celery_worker_process, tiny_model_dir, ml_engineer, snapshot
):
    base = {"base_model": str(tiny_model_dir), "eval_batch_size": 4, "max_length": 64}
    reward_model = final_run(start(ml_engineer, snapshot, "reward_model", {**base, "max_steps": 2}).pk)
    assert reward_model.status == Status.SUCCEEDED, reward_model.error
    ppo_config = {
        **base,
        "max_steps": 2,
        "rollout_batch_size": 4,
        "mini_batch_size": 2,
        "batch_size": 4,
        "response_length": 8,
        "ppo_epochs": 1,
        "num_processes": 2,
    }
    with transaction.atomic():
        run = run_start(
            kind="ppo", snapshot=snapshot, config=ppo_config, reward_model=reward_model, created_by=ml_engineer
        )
    run = final_run(run.pk, timeout=300)
    assert run.status == Status.SUCCEEDED, run.error + run.error_traceback
    assert run.lineage["launch"]["num_processes"] == 2 and run.compute["processes"] == 2
    assert (Path(settings.ARTIFACTS_DIR) / run.output_dir / "checkpoint" / "config.json").is_file()
    assert run.step == run.total_steps == 2
    # Rank 0 alone reported: one row per metric and step.
    pairs = list(RunMetric.objects.filter(run=run).values_list("step", "name"))
    assert pairs and len(pairs) == len(set(pairs))


def test_rloo_on_two_processes_succeeds_with_rank_0_reporting(
    celery_worker_process, tiny_model_dir, ml_engineer, snapshot
):
    base = {"base_model": str(tiny_model_dir), "eval_batch_size": 4, "max_length": 64}
    reward_model = final_run(start(ml_engineer, snapshot, "reward_model", {**base, "max_steps": 2}).pk)
    assert reward_model.status == Status.SUCCEEDED, reward_model.error
    # Per process 2 prompts' completions a step (batch_size 2, num_generations 2: one group each), 4 in all.
    rloo_config = {**base, "max_steps": 2, "batch_size": 2, "num_generations": 2, "response_length": 8}
    rloo_config["num_processes"] = 2
    with transaction.atomic():
        run = run_start(
            kind="rloo", snapshot=snapshot, config=rloo_config, reward_model=reward_model, created_by=ml_engineer
        )
    run = final_run(run.pk, timeout=300)
    assert_two_process_run(run, steps=2)
    for key in ("reward_mean", "initial_reward_mean", "kl"):
        assert isinstance(run.evaluation[key], float), key
    pairs = list(RunMetric.objects.filter(run=run).values_list("step", "name"))
    assert pairs and len(pairs) == len(set(pairs))


def test_a_second_machine_joins_the_run_with_join_run(celery_worker_process, tiny_model_dir, ml_engineer, snapshot):
    """Two "machines" on this host, one process each: the worker launches machine 0's rank, `manage.py join_run`
    machine 1's, over the run's main_process_ip and port. The run trains as the two-process run does: the loss of
    one process with the same global batch."""
    base = {"base_model": str(tiny_model_dir), **COMMON}
    single = final_run(start(ml_engineer, snapshot, "reward_model", {**base, "batch_size": 4}).pk, timeout=240)
    machines = {"num_machines": 2, "main_process_ip": "127.0.0.1", "main_process_port": free_port()}
    run = start(ml_engineer, snapshot, "reward_model", {**base, "batch_size": 2, **machines})
    node = subprocess.run(
        [sys.executable, "manage.py", "join_run", str(run.pk), "--machine-rank", "1", "--wait-seconds", "120"],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    run = final_run(run.pk, timeout=60)
    assert node.returncode == 0, node.stdout + node.stderr
    assert f"Run {run.pk} succeeded" in node.stdout
    assert run.status == Status.SUCCEEDED, run.error + run.error_traceback
    launch = run.lineage["launch"]
    assert (launch["num_machines"], launch["num_processes"], launch["machine_rank"]) == (2, 2, 0)
    assert (run.compute["machines"], run.compute["device_count"], run.compute["processes"]) == (2, 2, 1)
    folder = Path(settings.ARTIFACTS_DIR) / run.output_dir
    other = (folder / "accelerate_config.machine-1.yaml").read_text()
    assert '"machine_rank": 1' in other and f'"main_process_port": {machines["main_process_port"]}' in other
    assert (folder / "logs" / "rank-1.log").is_file()
    assert losses(run) == pytest.approx(losses(single), rel=TOLERANCE)


@pytest.mark.django_db
@pytest.mark.usefixtures("artifacts")
def test_join_run_refuses_a_run_on_one_machine_and_a_bad_machine_rank(ml_engineer, project):
    from django.core.management import CommandError, call_command

    from tests.trainer.runs_fixtures import make_snapshot

    snapshot = make_snapshot(project)
    one = TrainingRun.objects.create(
        project=project, kind="dpo", snapshot=snapshot, config={"num_processes": 2}, **LIMIT
    )
    with pytest.raises(CommandError, match="trains on one machine"):
        call_command("join_run", str(one.pk), "--machine-rank", "1")
    two = TrainingRun.objects.create(
        project=project, kind="dpo", snapshot=snapshot, config={"num_machines": 2}, **LIMIT
    )
    with pytest.raises(CommandError, match="machine_rank must be 1 to 1"):
        call_command("join_run", str(two.pk), "--machine-rank", "2")
    TrainingRun.objects.filter(pk=two.pk).update(status=Status.RUNNING)
    # Running, but machine 0's config is not in this machine's artifacts folder: not the shared one.
    with pytest.raises(CommandError, match="must be the one machine 0 writes to"):
        call_command("join_run", str(two.pk), "--machine-rank", "1", "--wait-seconds", "0.5")
    # Shared, but the snapshot's files are not what they were: refused before any rank starts.
    run_dir = Path(settings.ARTIFACTS_DIR) / "runs" / str(two.pk)
    run_dir.mkdir(parents=True)
    (run_dir / "accelerate_config.yaml").write_text("{}\n")
    dataset = Path(settings.ARTIFACTS_DIR) / snapshot.directory / "train.jsonl"
    dataset.write_text(dataset.read_text() + "\n")
    with pytest.raises(CommandError, match="The run's snapshot cannot be read here"):
        call_command("join_run", str(two.pk), "--machine-rank", "1", "--wait-seconds", "0.5")
    TrainingRun.objects.filter(pk=two.pk).update(status=Status.CANCELLED)
    with pytest.raises(CommandError, match="is cancelled: there is nothing to join"):
        call_command("join_run", str(two.pk), "--machine-rank", "1")
    with pytest.raises(CommandError, match="No run 999999"):
        call_command("join_run", "999999", "--machine-rank", "1")
