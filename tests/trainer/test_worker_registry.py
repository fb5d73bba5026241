"""The worker registry written by a real Celery worker (trainer.services.workers, config/celery.py's signals), and
what a run records about the compute it used, shown on its page and in its lineage (docs/SCALING.md)."""

import os
import time

import pytest
from django.test import Client

from tests.fixtures.worker import start_worker
from tests.trainer.test_e2e_training import QUICK, api_start, final_run, snapshot  # noqa: F401 (a fixture)
from trainer.models import Status, WorkerCapability
from trainer.selectors import workers_live

pytestmark = pytest.mark.worker


def wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)
    return value


def test_a_worker_records_what_it_offers_refreshes_it_and_says_when_it_stops(transactional_db, monkeypatch, settings):
    import torch

    monkeypatch.setenv("TANDEM_WORKER_SEEN_SECONDS", "1")
    with start_worker(queues="default,gpu,gpu-2") as worker:
        row = wait_for(
            lambda: WorkerCapability.objects.filter(name__startswith=f"{worker.name}@").first(),
            timeout=90,
            what="the worker's registry row",
        )
        assert row.queues == ["default", "gpu", "gpu-2"]
        assert (row.gpu_count, row.cuda, row.bf16) == (torch.cuda.device_count(), torch.cuda.is_available(), False)
        assert row.cpu_processes == os.cpu_count() and row.process_capacity == os.cpu_count()
        assert row.torch_version == torch.__version__ and row.accelerate is True
        for library in ("deepspeed", "bitsandbytes", "vllm"):
            try:
                __import__(library)
                present = True
            except Exception:
                present = False
            assert getattr(row, library) is present, library
        assert row.probe_error == "" and row.stopped_at is None
        first_seen = row.last_seen_at
        wait_for(
            lambda: WorkerCapability.objects.get(pk=row.pk).last_seen_at > first_seen,
            timeout=30,
            what="a refresh of last_seen_at",
        )
        assert row.name in [w.name for w in workers_live()]
    row.refresh_from_db()
    assert row.stopped_at is not None  # the warm shutdown said so
    assert row.name not in [w.name for w in workers_live()]


def test_a_default_only_worker_records_nothing(transactional_db):
    with start_worker(queues="default") as worker:
        time.sleep(3)
        assert not WorkerCapability.objects.filter(name__startswith=f"{worker.name}@").exists()


def test_a_run_records_the_compute_it_used_and_its_page_and_lineage_show_it(
    celery_worker_process,
    tiny_model_dir,
    ml_engineer_client,
    snapshot,  # noqa: F811
):
    config = {
        "base_model": str(tiny_model_dir),
        **QUICK,
        "max_steps": 2,
        "torch_dtype": "bfloat16",
        "attn_implementation": "eager",
        "gradient_checkpointing": True,
    }
    run = final_run(api_start(ml_engineer_client, snapshot, "reward_model", config))
    assert run.status == Status.SUCCEEDED, run.error + run.error_traceback
    expected = {
        "processes": 1,
        "machines": 1,
        "device_count": 1,
        "device_type": "cpu",
        "strategy": "single process",
        "precision": "bfloat16 weights, no autocast",
        "attn_implementation": "eager",
        "gradient_checkpointing": True,
    }
    assert run.compute == expected
    assert run.lineage["run"]["compute"] == expected
    assert ml_engineer_client.get(f"/api/v1/runs/{run.pk}/").json()["compute"] == expected
    page = Client()
    page.force_login(run.created_by)
    html = page.get(f"/runs/{run.pk}/").content.decode()
    assert (
        "1 process on 1 machine, 1 cpu device; strategy: single process; precision: bfloat16 weights, no autocast; "
        "attention: eager; gradient checkpointing"
    ) in html
