"""SFT end to end with a real Celery worker (filesystem broker with SQLite, Redis with PostgreSQL) on the tiny model:
accepted demonstrations whose answers follow a learnable pattern -> SFT snapshot -> SFT run through the API (its
validation perplexity falls below the base model's) -> a DPO run on a preference snapshot, started from the SFT run
chosen in the admin's form (its base model and its reference), whose lineage names the SFT run, the demonstrations'
writers and reviewers."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.trainer.runs_fixtures import make_snapshot
from tests.trainer.sft_fixtures import make_sft_snapshot
from tests.trainer.test_e2e_training import final_run
from trainer.models import Checkpoint, Kind, Status, TrainingRun

pytestmark = pytest.mark.worker
RUNS = "/api/v1/runs/"
QUICK = {"batch_size": 4, "eval_batch_size": 4, "max_length": 64, "time_limit_seconds": 300}


def test_sft_lowers_perplexity_and_dpo_starts_from_it(
    celery_worker_process, tiny_model_dir, project, ml_engineer, ml_engineer_client
):
    demonstrations = make_sft_snapshot(project, count=40, validation_fraction=0.2, created_by=ml_engineer)
    manifest = json.loads((Path(settings.ARTIFACTS_DIR) / demonstrations.directory / "manifest.json").read_text())
    writers, reviewers = manifest["writers"], manifest["reviewers"]
    assert len(writers) == 2 and len(reviewers) == 1

    # SFT through the API: the defaults but a learning rate a 40-row run can show something with.
    config = {"base_model": str(tiny_model_dir), **QUICK, "learning_rate": 1e-3, "epochs": 2}
    response = ml_engineer_client.post(
        RUNS, {"kind": "sft", "snapshot": demonstrations.pk, "config": config}, format="json"
    )
    assert response.status_code == 201, response.json()
    sft = final_run(response.json()["id"])
    assert sft.status == Status.SUCCEEDED, sft.error + sft.error_traceback
    evaluation = sft.evaluation
    assert evaluation["validation_perplexity"] < evaluation["base_validation_perplexity"], evaluation
    assert evaluation["n_validation_examples"] == demonstrations.validation_count > 0
    assert sft.config["epochs"] == 2 and sft.config["learning_rate"] == 1e-3
    checkpoints = list(Checkpoint.objects.filter(run=sft).order_by("step"))
    assert [c.final for c in checkpoints] == [False] * (len(checkpoints) - 1) + [True] and len(checkpoints) >= 3
    assert checkpoints[-1].step == sft.total_steps == sft.step
    assert sft.lineage["demonstrations"]["writers"] == writers
    assert sft.lineage["demonstrations"]["reviewers"] == reviewers
    on_disk = json.loads((Path(settings.ARTIFACTS_DIR) / sft.output_dir / "checkpoint" / "lineage.json").read_text())
    assert on_disk == sft.lineage
    detail = ml_engineer_client.get(f"{RUNS}{sft.pk}/").json()
    assert detail["evaluation_summary"]["name"] == "validation_perplexity"
    assert detail["evaluation"]["base_validation_perplexity"] == evaluation["base_validation_perplexity"]
    assert sft.metrics.filter(name="eval_validation_perplexity").exists()

    # DPO on preference pairs, its base model (and so its reference) the SFT run, chosen in the admin's form.
    pairs = make_snapshot(project)
    ml_engineer.is_staff = True
    ml_engineer.save(update_fields=["is_staff"])
    admin = Client()
    admin.force_login(ml_engineer)
    form = admin.get("/admin/trainer/trainingrun/start/").content.decode()
    assert re.search(rf'<option value="{sft.pk}"', form)
    settings_lines = "\n".join(f"{k}={v}" for k, v in {**QUICK, "max_steps": 3}.items())
    response = admin.post(
        "/admin/trainer/trainingrun/start/",
        {"kind": "dpo", "snapshot": pairs.pk, "base_model_run": sft.pk, "base_model": "", "settings": settings_lines},
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    dpo = final_run(TrainingRun.objects.get(kind=Kind.DPO).pk)
    assert dpo.status == Status.SUCCEEDED, dpo.error + dpo.error_traceback
    assert dpo.config["base_model"] == f"run:{sft.pk}"
    assert {"reward_accuracy", "reward_margin_mean"} <= set(dpo.evaluation)
    lineage = dpo.lineage
    assert lineage["reference_model"] == f"run:{sft.pk}"
    assert lineage["base_run"]["id"] == sft.pk and lineage["base_run"]["kind"] == "sft"
    assert lineage["base_run"]["snapshot"]["id"] == demonstrations.pk
    assert lineage["base_run"]["demonstrations"]["writers"] == writers
    assert lineage["base_run"]["demonstrations"]["reviewers"] == reviewers
    assert lineage["snapshot"]["id"] == pairs.pk

    page = admin.get(f"/runs/{dpo.pk}/").content.decode()
    assert f'href="/runs/{sft.pk}/"' in page and all(name in page for name in writers)
