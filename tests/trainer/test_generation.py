"""Generate runs end to end in this process: started through run_start like the evaluation app starts them, executed
by the worker's run_execute on the tiny models; the responses stored, the summary kept as the run's evaluation, the
lineage traced to the sampled checkpoint's data, and every refusal (a changed prompt file, a changed checkpoint, a
reward model that is not this project's) failing the run "Refused: ..." with nothing stored."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings

from core.files import file_sha256
from tests.factories import ProjectFactory
from tests.trainer.runs_fixtures import finished_reward_model, make_snapshot
from trainer.checkpoints import file_manifest
from trainer.configs import ConfigError
from trainer.models import Checkpoint, Generation, Kind, Status, TrainingRun
from trainer.selectors import run_evaluation_summary
from trainer.services.execute import run_execute
from trainer.services.runs import checkpoint_dir, run_output_dir, run_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts", "sent")]

PROMPTS = [
    {"id": "t1", "prompt": "The model writes", "stratum": "usage", "category": "poems"},
    {"id": "t2", "prompt": "A reviewer checks the facts and", "stratum": "usage"},
    {"id": "m1", "messages": [{"role": "user", "content": "My friend explains"}], "stratum": "red_team"},
    {"id": "t3", "prompt": "The cat", "stratum": "synthetic"},
    {"id": "m2", "messages": [{"role": "user", "content": "Our team lists the data"}], "stratum": "usage"},
]
SUMMARY_KEYS = {
    "prompts",
    "responses",
    "mean_length",
    "mean_reward",
    "mean_kl",
    "identity_leaks",
    "finish_length_share",
    "reward_length_spearman",
}


@pytest.fixture(autouse=True)
def roots(settings, sft_policy_dir, tiny_model_dir):
    settings.TANDEM_MODEL_ROOTS = [str(sft_policy_dir), str(tiny_model_dir)]


@pytest.fixture
def inputs(artifacts) -> dict:
    """The prompt file as the evaluation app writes it: under ARTIFACTS_DIR, named with its sha256 in the run."""
    path = artifacts / "evaluation" / "set-1.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in PROMPTS))
    return {"prompts": {"path": "evaluation/set-1.jsonl", "sha256": file_sha256(path), "count": len(PROMPTS)}}


@pytest.fixture
def reward_model(project, tiny_model_dir):
    """A succeeded reward-model run whose checkpoint is the tiny model (a random score head: any score will do)."""
    run = finished_reward_model(make_snapshot(project))
    shutil.rmtree(checkpoint_dir(run=run))
    shutil.copytree(tiny_model_dir, checkpoint_dir(run=run))
    return run


def start(project, inputs, model, **config) -> TrainingRun:
    values = {"model": str(model), "n": 2, "max_new_tokens": 8, "temperature": 1.0, "batch_size": 2, **config}
    return run_start(kind="generate", snapshot=None, project_id=project.pk, inputs=inputs, config=values)


def test_a_generate_run_stores_every_response_and_its_summary(project, inputs, sft_policy_dir, reward_model):
    project.identity_leak_patterns = ["the", "NoSuchVendor"]
    project.save(update_fields=["identity_leak_patterns"])
    run = start(project, inputs, sft_policy_dir, reward_model_run=reward_model.pk, reference_model=str(sft_policy_dir))
    assert run.status == Status.QUEUED and run.snapshot is None and run.kind == Kind.GENERATE

    assert run_execute(run_id=run.pk) == Status.SUCCEEDED
    run.refresh_from_db()
    rows = list(Generation.objects.filter(run=run).order_by("prompt_id", "sample"))
    assert [(g.prompt_id, g.sample) for g in rows] == sorted((p["id"], s) for p in PROMPTS for s in (0, 1))
    assert all(0 < g.token_count <= 8 and g.finish_reason in ("stop", "length") for g in rows)
    assert all(g.reward is not None and g.kl == 0.0 for g in rows)  # the reference is the policy itself
    leaking = [g for g in rows if re.search(r"\bthe\b", g.text, re.IGNORECASE)]
    assert leaking and [g.identity_leak for g in rows] == [g in leaking for g in rows]

    evaluation = run.evaluation
    assert set(evaluation) == SUMMARY_KEYS
    assert evaluation["prompts"] == 5 and evaluation["responses"] == 10
    assert evaluation["identity_leaks"] == len(leaking)
    assert evaluation["mean_length"] == pytest.approx(np.mean([g.token_count for g in rows]))
    assert evaluation["mean_reward"] == pytest.approx(np.mean([g.reward for g in rows]))
    assert evaluation["mean_kl"] == 0.0
    assert evaluation["finish_length_share"] == pytest.approx(np.mean([g.finish_reason == "length" for g in rows]))
    assert evaluation["reward_length_spearman"] is not None
    assert run_evaluation_summary(run=run) == {
        "name": "mean_length",
        "label": "mean length",
        "value": evaluation["mean_length"],
    }
    assert (run.step, run.total_steps) == (3, 3)  # 5 prompts, 2 a batch

    output = run_output_dir(run=run)
    on_disk = [json.loads(line) for line in (output / "generations.jsonl").read_text().splitlines()]
    assert sorted((r["id"], r["sample"], r["text"]) for r in on_disk) == [(g.prompt_id, g.sample, g.text) for g in rows]
    lineage = json.loads((output / "lineage.json").read_text())
    assert lineage == json.loads(json.dumps(run.lineage))
    assert lineage["run"]["kind"] == "generate" and lineage["snapshot"] is None
    assert lineage["model"] == str(sft_policy_dir) and lineage["sampled_checkpoint"] is None
    assert lineage["prompts"] == inputs["prompts"]
    assert lineage["reward_model"]["run"] == reward_model.pk
    assert lineage["reference_model"] == str(sft_policy_dir)
    assert lineage["evaluation"] == evaluation


def test_the_same_seed_writes_the_same_responses(project, inputs, sft_policy_dir):
    runs = [start(project, inputs, sft_policy_dir, seed=7) for _ in range(2)]
    texts = []
    for run in runs:
        assert run_execute(run_id=run.pk) == Status.SUCCEEDED
        texts.append(list(Generation.objects.filter(run=run).values_list("prompt_id", "sample", "text")))
        assert TrainingRun.objects.get(pk=run.pk).evaluation["mean_reward"] is None
    assert texts[0] == texts[1] and len(texts[0]) == 10


def test_a_changed_prompt_file_fails_the_run_before_anything_is_sampled(project, inputs, sft_policy_dir, monkeypatch):
    run = start(project, inputs, sft_policy_dir)
    path = Path(django_settings.ARTIFACTS_DIR) / inputs["prompts"]["path"]
    path.write_text(path.read_text().replace("The cat", "The dog"))
    monkeypatch.setattr("trainer.ml.generate.generate", lambda **kw: pytest.fail("must not sample"))

    assert run_execute(run_id=run.pk) == Status.FAILED
    run.refresh_from_db()
    assert run.error.startswith(
        "Refused: Prompt file evaluation/set-1.jsonl was changed after the run was started (sha256 "
    )
    assert not Generation.objects.filter(run=run).exists()


def test_a_prompt_file_outside_the_artifacts_is_refused(project, inputs, sft_policy_dir, tmp_path):
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text(json.dumps(PROMPTS[0]) + "\n")
    spec = {"prompts": {"path": "../elsewhere.jsonl", "sha256": file_sha256(outside), "count": 1}}
    run = start(project, spec, sft_policy_dir)
    assert run_execute(run_id=run.pk) == Status.FAILED
    assert (
        TrainingRun.objects.get(pk=run.pk).error
        == "Refused: Prompt file ../elsewhere.jsonl: not under the artifacts folder."
    )


def test_a_reward_model_must_be_a_succeeded_reward_model_run_of_the_project(
    project, inputs, sft_policy_dir, reward_model
):
    other = finished_reward_model(make_snapshot(ProjectFactory(name="Other")))
    failed = finished_reward_model(reward_model.snapshot, status=Status.FAILED)
    dpo = TrainingRun.objects.create(
        project=project, kind=Kind.DPO, status=Status.SUCCEEDED, config={}, snapshot=reward_model.snapshot,
        time_limit_seconds=60,
    )  # fmt: skip
    expected = {
        other.pk: f"No run {other.pk} in this project.",
        failed.pk: f"Reward-model run {failed.pk} is failed; it must have succeeded.",
        dpo.pk: f"Run {dpo.pk} is a DPO run, not a reward model.",
        999999: "No run 999999 in this project.",
    }
    before = TrainingRun.objects.count()
    for run_id, message in expected.items():
        with pytest.raises(ConfigError) as refused:
            start(project, inputs, sft_policy_dir, reward_model_run=run_id)
        assert refused.value.errors == {"reward_model_run": message}
    assert TrainingRun.objects.count() == before

    # A row queued before the rule (or edited by hand) is refused again by the worker, before anything is loaded.
    run = start(project, inputs, sft_policy_dir, reward_model_run=reward_model.pk)
    TrainingRun.objects.filter(pk=run.pk).update(config={**run.config, "reward_model_run": other.pk})
    assert run_execute(run_id=run.pk) == Status.FAILED
    assert TrainingRun.objects.get(pk=run.pk).error == f"Refused: reward_model_run: No run {other.pk} in this project."


def policy_checkpoint(project, sft_policy_dir, *, step: int = 2) -> Checkpoint:
    """An intermediate checkpoint of a DPO run that was lost afterwards: what a lost run keeps."""
    snapshot = make_snapshot(project)
    run = TrainingRun.objects.create(
        project=project, kind=Kind.DPO, status=Status.LOST, config={"base_model": str(sft_policy_dir)},
        snapshot=snapshot, time_limit_seconds=60,
    )  # fmt: skip
    folder = run_output_dir(run=run) / "checkpoints" / f"step-{step}"
    shutil.copytree(sft_policy_dir, folder)
    return Checkpoint.objects.create(
        run=run,
        step=step,
        folder=str(folder.relative_to(django_settings.ARTIFACTS_DIR)),
        manifest=file_manifest(folder),
        metrics={"loss": 0.5},
    )


def test_sampling_a_checkpoint_traces_the_lineage_to_its_training_data(project, inputs, sft_policy_dir):
    checkpoint = policy_checkpoint(project, sft_policy_dir)
    run = run_start(
        kind="generate", snapshot=None, project_id=project.pk, inputs=inputs, sampled_checkpoint=checkpoint,
        config={"model": f"checkpoint:{checkpoint.pk}", "max_new_tokens": 4, "n": 1},
    )  # fmt: skip
    assert run.config["model"] == f"checkpoint:{checkpoint.pk}"
    assert run_execute(run_id=run.pk) == Status.SUCCEEDED
    run.refresh_from_db()
    assert Generation.objects.filter(run=run).count() == 5

    lineage = run.lineage
    sampled = lineage["sampled_checkpoint"]
    assert (sampled["id"], sampled["run"], sampled["step"]) == (checkpoint.pk, checkpoint.run_id, 2)
    assert sampled["manifest"] == checkpoint.manifest and "model.safetensors" in sampled["manifest"]
    canonical = json.dumps(checkpoint.manifest, sort_keys=True, separators=(",", ":")).encode()
    assert sampled["manifest_sha256"] == hashlib.sha256(canonical).hexdigest()
    source = checkpoint.run
    assert lineage["sampled_run"]["id"] == source.pk and lineage["sampled_run"]["kind"] == "dpo"
    assert lineage["sampled_run"]["snapshot"]["id"] == source.snapshot_id
    assert lineage["sampled_run"]["snapshot"]["sha256"] == source.snapshot.sha256
    assert [b["id"] for b in lineage["sampled_run"]["batches"]] == list(
        source.snapshot.batches.order_by("pk").values_list("pk", flat=True)
    )
    assert lineage["sampled_run"]["criteria_versions"][0]["number"] == 1
    assert lineage["training_snapshots"] == [source.snapshot_id]


def test_a_changed_checkpoint_fails_the_run_before_anything_is_sampled(project, inputs, sft_policy_dir, monkeypatch):
    checkpoint = policy_checkpoint(project, sft_policy_dir)
    run = start(project, inputs, f"checkpoint:{checkpoint.pk}")
    config = Path(django_settings.ARTIFACTS_DIR) / checkpoint.folder / "config.json"
    config.write_text(config.read_text() + "\n")
    monkeypatch.setattr("trainer.ml.generate.generate", lambda **kw: pytest.fail("must not sample"))

    assert run_execute(run_id=run.pk) == Status.FAILED
    assert TrainingRun.objects.get(pk=run.pk).error == (
        f"Refused: model: Checkpoint {checkpoint.pk} (run {checkpoint.run_id}, step 2): files changed since it was "
        "saved: config.json."
    )
    assert not Generation.objects.filter(run=run).exists()


def test_a_cancel_stops_the_run_between_batches_and_stores_nothing(project, inputs, sft_policy_dir, monkeypatch):
    import trainer.ml.generate as gen

    run = start(project, inputs, sft_policy_dir)
    real = gen.batch_seed

    def cancel_at_the_second_batch(seed, index):
        if index == 1:
            TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)
        return real(seed, index)

    monkeypatch.setattr(gen, "batch_seed", cancel_at_the_second_batch)
    assert run_execute(run_id=run.pk) == Status.CANCELLED
    run.refresh_from_db()
    assert run.error == "Cancelled at step 2 of 3."
    assert not Generation.objects.filter(run=run).exists()
