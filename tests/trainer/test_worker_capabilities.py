"""Runs checked against what the live workers offer before anything is queued (docs/SCALING.md): DeepSpeed, 4-/8-bit,
vLLM and process counts, through the API, the admin's start form and `start_run`; the queue a multi-process run is
sent to; and nothing refused when no worker is live."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from core.models import OutboxMessage
from trainer.capabilities import capability_errors, run_queue
from trainer.models import TrainingRun, WorkerCapability
from trainer.selectors import workers_live
from trainer.services.runs import run_outbox_key, run_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts", "model_roots")]
RUNS = "/api/v1/runs/"
START = "/admin/trainer/trainingrun/start/"
CPU_FACTS = {"gpu_count": 0, "cpu_processes": 2, "cuda": False, "accelerate": True, "torch_version": "2.13.0+cpu"}
GPU_FACTS = {"gpu_count": 4, "cpu_processes": 16, "cuda": True, "bf16": True, "accelerate": True}


def worker(name: str, *, queues=("gpu",), seen_ago: float = 0, stopped: bool = False, **facts) -> WorkerCapability:
    now = timezone.now()
    return WorkerCapability.objects.create(
        name=name,
        queues=list(queues),
        started_at=now - timedelta(seconds=seen_ago),
        last_seen_at=now - timedelta(seconds=seen_ago),
        stopped_at=now if stopped else None,
        **{**CPU_FACTS, **facts},
    )


@pytest.fixture(autouse=True)
def only_our_workers():
    """Rows a session worker of other tests left behind are not this test's workers."""
    WorkerCapability.objects.all().delete()


def post_run(client, snapshot, **config):
    body = {"kind": "dpo", "snapshot": snapshot.pk, "config": {"base_model": "tiny", **config}}
    return client.post(RUNS, body, format="json")


def test_live_means_seen_recently_and_not_stopped(settings):
    settings.TANDEM_WORKER_SEEN_SECONDS, settings.TANDEM_WORKER_LIVE_INTERVALS = 10, 3
    worker("fresh@h", seen_ago=5)
    worker("old@h", seen_ago=31)
    worker("stopped@h", stopped=True)
    assert [w.name for w in workers_live()] == ["fresh@h"]


def test_deepspeed_without_deepspeed_on_any_live_worker_is_refused_by_the_api(ml_engineer_client, snapshot, sent):
    worker("cpu@h")
    response = post_run(ml_engineer_client, snapshot, strategy="deepspeed_zero2", num_processes=2)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "no_capable_worker"
    assert body["errors"] == {
        "strategy": "Needs DeepSpeed installed, and no live worker has it (cpu@h: 0 GPUs, 2 CPU processes)."
    }
    assert body["errors"]["strategy"] in body["detail"]
    assert TrainingRun.objects.count() == 0 and sent == []


def test_four_bit_without_cuda_and_bitsandbytes_is_refused_by_the_api(ml_engineer_client, snapshot, sent):
    worker("cpu@h", bitsandbytes=True)  # installed, but no CUDA device
    response = post_run(ml_engineer_client, snapshot, load_in_4bit=True, lora=True)
    assert (response.status_code, response.json()["code"]) == (400, "no_capable_worker")
    assert response.json()["errors"] == {
        "load_in_4bit": "Needs bitsandbytes and a CUDA device, and no live worker has it "
        "(cpu@h: 0 GPUs, 2 CPU processes, bitsandbytes)."
    }
    assert sent == []


def test_more_processes_than_any_live_worker_offers_is_refused_by_the_api(ml_engineer_client, snapshot, sent):
    worker("cpu@h")
    worker("gpu@h", **GPU_FACTS)
    response = post_run(ml_engineer_client, snapshot, num_processes=8)
    assert (response.status_code, response.json()["code"]) == (400, "no_capable_worker")
    assert response.json()["errors"] == {
        "num_processes": "Needs 8 processes on one machine, and no live worker has it "
        "(cpu@h: 0 GPUs, 2 CPU processes; gpu@h: 4 GPUs)."
    }
    # 4 GPUs on one worker, 2 gloo processes on a CPU-only one: both fit
    assert post_run(ml_engineer_client, snapshot, num_processes=4).status_code == 201
    assert post_run(ml_engineer_client, snapshot, num_processes=2).status_code == 201


def test_a_combination_no_single_worker_offers_is_named(snapshot):
    worker("ds@h", deepspeed=True)  # DeepSpeed, but 2 CPU processes
    worker("gpu@h", **GPU_FACTS)  # 4 GPUs, no DeepSpeed
    found = capability_errors(
        kind="dpo", config={"strategy": "deepspeed_zero3", "num_processes": 4}, workers=workers_live()
    )
    assert found == {
        "num_processes": "Needs 4 processes on one machine, and no live worker that meets the rest has it "
        "(ds@h: 0 GPUs, 2 CPU processes, deepspeed)."
    }


def test_config_problems_come_before_the_workers_check(ml_engineer_client, snapshot, sent):
    worker("cpu@h")
    response = post_run(ml_engineer_client, snapshot, strategy="deepspeed_zero2", num_processes=2, epochs=0)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_config")
    assert response.json()["errors"] == {"epochs": "Must be at least 1."}


def test_with_no_live_worker_nothing_is_refused(ml_engineer_client, snapshot, sent):
    worker("gone@h", seen_ago=3600)
    response = post_run(ml_engineer_client, snapshot, strategy="deepspeed_zero3", num_processes=64)
    assert response.status_code == 201  # a worker may still start: the run waits in its queue as before
    assert OutboxMessage.objects.filter(key=run_outbox_key(run_id=response.json()["id"])).exists()


def test_a_capable_worker_lets_the_run_through(ml_engineer_client, snapshot, sent):
    worker("big@h", **GPU_FACTS, deepspeed=True, bitsandbytes=True)
    response = post_run(
        ml_engineer_client, snapshot, strategy="deepspeed_zero3", num_processes=4, load_in_4bit=True, lora=True
    )
    assert response.status_code == 201, response.json()


def test_vllm_generation_needs_vllm_and_cuda(project):
    worker("cpu@h", vllm=True)
    config = {"model": "tiny", "backend": "vllm"}
    with pytest.raises(Exception) as refused:
        run_start(kind="generate", snapshot=None, config=config, project_id=project.pk, inputs={"prompts": "p"})
    assert refused.value.code == "no_capable_worker"
    assert refused.value.errors == {
        "backend": "Needs vLLM and a CUDA device, and no live worker has it (cpu@h: 0 GPUs, 2 CPU processes, vllm)."
    }
    assert capability_errors(kind="generate", config={"backend": "transformers"}, workers=workers_live()) == {}
    # RLOO's rollouts ask the same of a worker.
    assert set(capability_errors(kind="rloo", config={"backend": "vllm"}, workers=workers_live())) == {"backend"}


def test_the_start_form_shows_the_refusal_on_the_settings(mle_admin, snapshot, sent):
    worker("cpu@h")
    response = mle_admin.post(
        START, {"kind": "dpo", "snapshot": snapshot.pk, "base_model": "tiny", "settings": "num_processes=512"}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors["settings"]
    assert errors == [
        "num_processes: Needs 512 processes on one machine, and no live worker has it (cpu@h: 0 GPUs, 2 CPU processes)."
    ]
    assert TrainingRun.objects.count() == 0 and sent == []


def test_start_run_shows_the_refusal(snapshot, sent):
    worker("cpu@h")
    with pytest.raises(CommandError) as refused:
        call_command(
            "start_run", "--kind", "reward_model", "--snapshot", str(snapshot.pk), "--base-model", "tiny",
            "--set", "load_in_8bit=true", "--set", "lora=true", stdout=StringIO(),
        )  # fmt: skip
    assert str(refused.value) == (
        "Invalid configuration; nothing was queued:\n"
        "  load_in_8bit: Needs bitsandbytes and a CUDA device, and no live worker has it (cpu@h: 0 GPUs, 2 CPU "
        "processes)."
    )
    assert sent == []


def test_a_multi_process_run_goes_to_the_smallest_sized_queue_that_fits(ml_engineer_client, snapshot, sent):
    worker("four@h", queues=["gpu", "gpu-4"], **GPU_FACTS)
    worker("eight@h", queues=["gpu", "gpu-8"], **{**GPU_FACTS, "gpu_count": 8})

    def queue_of(response) -> str:
        assert response.status_code == 201, response.json()
        message = OutboxMessage.objects.get(key=run_outbox_key(run_id=response.json()["id"]))
        return message.options["queue"]

    assert queue_of(post_run(ml_engineer_client, snapshot)) == "gpu"
    assert queue_of(post_run(ml_engineer_client, snapshot, num_processes=3)) == "gpu-4"
    assert queue_of(post_run(ml_engineer_client, snapshot, num_processes=4)) == "gpu-4"
    assert queue_of(post_run(ml_engineer_client, snapshot, num_processes=6)) == "gpu-8"
    # no sized queue: the shared one
    assert run_queue(config={"num_processes": 2}, workers=[]) == "gpu"
