"""The closed loop end to end, through the APIs and a real Celery worker, on a tiny local model.

An ML engineer trains DPO with checkpoints along the run, imports a held-out evaluation set, samples the base model
and two checkpoints (generate runs), and makes evaluation batches of consecutive models. Three annotators judge them
through the annotator API, blind: they prefer the candidate on 70 % of the prompts (the test looks up which side
that is, as no annotator could). The results must find 0.70 inside their interval, the leaderboard must rank the
models in the order the annotators prefer them, and a batch whose annotators prefer the baseline on the red-team
prompts must be flagged as a regression on that stratum. Then a run killed mid-way keeps its checkpoints, and a run
resumed from one reaches the step count of an uninterrupted one.
"""

import hashlib
import io
import json
import tarfile

import pytest
from rest_framework.test import APIClient

from annotation.models import Assignment, Membership
from annotation.services import member_add
from core.authz import Role
from evaluation.models import EvaluationItem, Release
from tests.core.jobs import wait_for_job
from tests.factories import UserFactory
from tests.fixtures.worker import start_worker
from tests.trainer.test_e2e_ppo_reward import judged_poem_batch
from tests.trainer.test_e2e_training import RUNS, api_start, final_run, wait_for
from trainer.models import Checkpoint, Status, TrainingRun
from trainer.tasks import mark_lost_runs_task

pytestmark = pytest.mark.worker

SEED = 0
# Held out: none of these prompts is one of the training batch's "<Subject> <verb>" openings.
EVAL_SUBJECTS = ["a robot", "the teacher", "my sister", "an owl", "the pilot", "a student", "the baker", "our coach"]
EVAL_VERBS = ["sings", "builds", "paints", "reads", "cooks"]
DPO = {"batch_size": 8, "eval_batch_size": 8, "max_length": 64, "learning_rate": 5e-4, "beta": 0.1}
GENERATE = {"max_new_tokens": 8, "temperature": 1.0, "batch_size": 16, "seed": SEED, "time_limit_seconds": 300}
ANNOTATORS = ("eval-ann-1", "eval-ann-2", "eval-ann-3")


def eval_set_lines() -> list[dict]:
    lines = []
    for n, (subject, verb) in enumerate((s, v) for s in EVAL_SUBJECTS for v in EVAL_VERBS):
        lines.append(
            {
                "id": f"p{n:02d}",
                "prompt": f"{subject} {verb}".capitalize(),
                "stratum": "red_team" if n % 5 == 0 else "usage",
                "category": verb,
            }
        )
    return lines  # 40 prompts, 8 of them red_team


def prefers_candidate(prompt_id: str) -> bool:
    """70 % of the prompts, spread over both strata: p00-p06 yes, p07-p09 no, and so on."""
    return int(prompt_id[1:]) % 10 < 7


def annotate(project, *, prefer) -> int:
    """Every annotator judges everything served, through the annotator API. `prefer(evaluation_item)` says whether
    the candidate wins; the test maps it to the side shown, as only a test can. Returns the judgments made."""
    made = 0
    for username in ANNOTATORS:
        user = UserFactory(username=username)
        Membership.objects.get_or_create(project=project, user=user, defaults={"role": Role.ANNOTATOR})
        client = APIClient()
        client.force_authenticate(user)
        session = client.post(f"/api/v1/projects/{project.pk}/sessions/")
        assert session.status_code in (200, 201), session.content
        while True:
            task = client.get(f"/api/v1/sessions/{session.json()['id']}/next/")
            if task.status_code == 204:
                break
            assert task.status_code == 200, task.content
            assignment = Assignment.objects.select_related("item").get(pk=task.json()["assignment_id"])
            evaluation = EvaluationItem.objects.get(item=assignment.item)
            candidate_left = evaluation.candidate_is_a == assignment.left_is_a
            wins = prefer(evaluation)
            choice = "left" if wins == candidate_left else "right"
            answer = client.post(f"/api/v1/assignments/{assignment.pk}/judgment/", {"choice": choice}, format="json")
            assert answer.status_code == 201, answer.content
            made += 1
    return made


def generate(client, eval_set_id: int, model: str) -> int:
    response = client.post(
        f"/api/v1/eval-sets/{eval_set_id}/generations/", {"model": model, "config": GENERATE}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()["run"]


def eval_batch(client, project, candidate: int, baseline: int, name: str) -> dict:
    response = client.post(
        f"/api/v1/projects/{project.pk}/evaluation-batches/",
        {"candidate_run": candidate, "baseline_run": baseline, "name": name},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def dpo_snapshot(project, lead_client, ml_engineer_client):
    batch = judged_poem_batch(project)
    assert lead_client.post(f"/api/v1/batches/{batch.pk}/close/").status_code == 200
    response = ml_engineer_client.post(
        f"/api/v1/projects/{project.pk}/datasets/",
        {"batches": [batch.pk], "validation_fraction": 0.25, "seed": SEED},
        format="json",
    )
    job = wait_for_job(ml_engineer_client, response)
    assert job["state"] == "succeeded", job
    from rewards.models import DatasetSnapshot

    return DatasetSnapshot.objects.get(pk=job["result"]["id"])


def test_checkpoints_are_judged_blind_and_ranked(
    celery_worker_process, sft_policy_dir, project, dpo_snapshot, ml_engineer_client, lead_client
):
    project.overlap = project.max_overlap = 3
    project.save()
    base = {"base_model": str(sft_policy_dir), "seed": SEED, "time_limit_seconds": 300}

    # DPO with a checkpoint every 2 steps: three intermediate ones and the final one.
    dpo_id = api_start(ml_engineer_client, dpo_snapshot, "dpo", {**base, **DPO, "max_steps": 8, "checkpoint_every": 2})
    dpo = final_run(dpo_id, timeout=240)
    assert dpo.status == Status.SUCCEEDED, dpo.error + dpo.error_traceback
    listed = ml_engineer_client.get(f"{RUNS}{dpo_id}/checkpoints/").json()
    listed = listed["results"] if isinstance(listed, dict) else listed
    assert [(c["step"], c["final"]) for c in listed] == [(2, False), (4, False), (6, False), (8, True)], listed
    step_4 = next(c["id"] for c in listed if c["step"] == 4)

    # A held-out evaluation set, imported through the API.
    body = "\n".join(json.dumps(line) for line in eval_set_lines()).encode()
    response = ml_engineer_client.post(
        f"/api/v1/projects/{project.pk}/eval-sets/?name=held-out", body, content_type="application/jsonl"
    )
    assert response.status_code == 201, response.content
    eval_set = response.json()
    assert eval_set["prompt_count"] == 40

    # The base model, an intermediate checkpoint and the final one answer it.
    runs = {
        "base": generate(ml_engineer_client, eval_set["id"], str(sft_policy_dir)),
        "step 4": generate(ml_engineer_client, eval_set["id"], f"checkpoint:{step_4}"),
        "final": generate(ml_engineer_client, eval_set["id"], f"run:{dpo_id}"),
    }
    for run_id in runs.values():
        run = final_run(run_id, timeout=180)
        assert run.status == Status.SUCCEEDED, run.error + run.error_traceback
        assert run.generations.count() == 40
        assert run.evaluation["mean_length"] > 0

    # A reviewer writes the gate policy before the evaluation it judges: it is pinned to each batch when made.
    reviewer = UserFactory(username="qa-lead")
    member_add(project=project, username="qa-lead", role=Role.REVIEWER)
    reviewer_client = APIClient()
    reviewer_client.force_authenticate(reviewer)
    policy = {"min_win_rate_lower": 0.5, "min_stratum_win_rate": 0.3, "min_judgments": 60, "note": "Bar for v1."}
    response = reviewer_client.post(f"/api/v1/projects/{project.pk}/gate-policies/", policy, format="json")
    assert response.status_code == 201, response.json()

    # Consecutive models, candidate against the one before it; annotators prefer the candidate on 70 % of prompts.
    first = eval_batch(ml_engineer_client, project, runs["step 4"], runs["base"], "round-1")
    second = eval_batch(ml_engineer_client, project, runs["final"], runs["step 4"], "round-2")
    made = annotate(project, prefer=lambda item: prefers_candidate(item.prompt.external_id))
    assert made == 2 * 40 * 3

    for made_batch in (first, second):
        results = lead_client.get(f"/api/v1/evaluation-batches/{made_batch['id']}/results/").json()
        win = results["win_rate"]
        assert win["value"] == pytest.approx(0.70), results
        assert win["low"] <= 0.70 <= win["high"] and win["high"] - win["low"] < 0.5, win
        assert not any(flag["code"] == "stratum_regression" for flag in results.get("flags", [])), results

    # The stored leaderboard may predate the last votes (a worker refreshes it on a timer): ask for a fresh one.
    board = lead_client.get(f"/api/v1/projects/{project.pk}/leaderboard/?fresh=1").json()
    assert board["stale"] is False, board
    ranked = sorted(board["players"], key=lambda player: player["rating"])
    run_order = [player["run"] for player in ranked]
    assert run_order == [runs["base"], runs["step 4"], runs["final"]], board
    assert board["anchor"]["run"] == runs["base"]

    # A second scenario: the final model against the base, and the annotators prefer the base on red-team prompts.
    third = eval_batch(ml_engineer_client, project, runs["final"], runs["base"], "round-3")
    annotate(project, prefer=lambda item: item.prompt.stratum != "red_team")
    results = lead_client.get(f"/api/v1/evaluation-batches/{third['id']}/results/").json()
    regressions = [flag for flag in results["flags"] if flag["code"] == "stratum_regression"]
    assert regressions and "red_team" in regressions[0]["reason"], results

    # The gate: the step-4 checkpoint won against the base model and clears the bar; the reviewer approves and
    # releases it, and the worker writes the hand-off package.
    for made_batch in (first, third):
        assert lead_client.post(f"/api/v1/batches/{made_batch['batch']['id']}/close/").status_code == 200
    decision = reviewer_client.post(
        f"/api/v1/evaluation-batches/{first['id']}/decisions/",
        {"verdict": "approve", "note": "Wins on every stratum."},
        format="json",
    )
    assert decision.status_code == 201 and decision.json()["failing"] == [], decision.json()
    release = reviewer_client.post(f"/api/v1/decisions/{decision.json()['id']}/release/")
    assert release.status_code == 201, release.json()
    made = wait_for(
        lambda: Release.objects.filter(pk=release.json()["id"]).exclude(package_path="").first(),
        timeout=120,
        what="the hand-off package",
    )
    package = lead_client.get(f"/api/v1/releases/{made.pk}/package/")
    assert package.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(b"".join(package.streaming_content)), mode="r:gz") as archive:
        files = {m.name.split("/", 1)[-1]: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}
    manifest = json.loads(files.pop("manifest.json"))
    assert {name: hashlib.sha256(data).hexdigest() for name, data in files.items()} == {
        name: entry["sha256"] for name, entry in manifest["files"].items()
    }
    readme = files["README.md"].decode()
    for needed in ("criteria version 1", "poems", "round-1", "kappa", "70.0", "qa-lead"):
        assert needed in readme, needed

    # The final model loses the red-team prompts to the base: refused with the failing criterion, then released on a
    # reviewer's written override, which the release keeps and shows.
    refused = reviewer_client.post(
        f"/api/v1/evaluation-batches/{third['id']}/decisions/",
        {"verdict": "approve", "note": "Looks fine."},
        format="json",
    )
    assert refused.status_code == 409 and refused.json()["code"] == "gate_failed", refused.json()
    assert "min_stratum_win_rate" in json.dumps(refused.json()), refused.json()
    override = reviewer_client.post(
        f"/api/v1/evaluation-batches/{third['id']}/decisions/",
        {
            "verdict": "approve",
            "note": "Released for the usage traffic only.",
            "override_reason": "Red-team prompts are served by the previous model until the fix lands.",
        },
        format="json",
    )
    assert override.status_code == 201 and override.json()["override"], override.json()
    second_release = reviewer_client.post(f"/api/v1/decisions/{override.json()['id']}/release/")
    assert second_release.status_code == 201 and second_release.json()["override"], second_release.json()
    releases = lead_client.get(f"/api/v1/projects/{project.pk}/releases/").json()
    current = [r for r in releases if r["current"]]
    assert [(r["id"], r["override"]) for r in current] == [(second_release.json()["id"], True)], releases


def test_a_killed_run_keeps_its_checkpoints_and_a_resumed_run_reaches_the_same_step(
    celery_worker_process, sft_policy_dir, dpo_snapshot, ml_engineer_client, settings
):
    settings.TANDEM_RUN_HEARTBEAT_TIMEOUT_SECONDS = 3
    config = {"base_model": str(sft_policy_dir), "seed": SEED, "time_limit_seconds": 300, **DPO}
    config.update({"max_steps": 24, "checkpoint_every": 3, "batch_size": 2})
    run_id = api_start(ml_engineer_client, dpo_snapshot, "dpo", config)
    wait_for(
        lambda: Checkpoint.objects.filter(run_id=run_id, step__gte=6).exists() or _ended(run_id),
        timeout=180,
        what="two checkpoints",
    )
    celery_worker_process.kill()
    wait_for(
        lambda: (mark_lost_runs_task.apply().get(), TrainingRun.objects.get(pk=run_id).status == Status.LOST)[1],
        timeout=20,
        what="the run to be marked lost",
        every=0.25,
    )
    kept = list(Checkpoint.objects.filter(run_id=run_id, deleted_at__isnull=True).order_by("step"))
    assert kept and all(c.resumable and not c.final for c in kept), kept
    assert TrainingRun.objects.get(pk=run_id).step < 24
    latest = kept[-1]

    with start_worker():
        resumed_id = api_start(ml_engineer_client, dpo_snapshot, "dpo", {**config, "resume_from": latest.pk})
        resumed = final_run(resumed_id, timeout=240)
    assert resumed.status == Status.SUCCEEDED, resumed.error + resumed.error_traceback
    assert resumed.resume_from_id == latest.pk
    assert resumed.step == 24
    steps = list(Checkpoint.objects.filter(run_id=resumed_id).order_by("step").values_list("step", flat=True))
    assert steps[0] > latest.step and steps[-1] == 24, steps


def _ended(run_id: int) -> bool:
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status in (Status.QUEUED, Status.RUNNING), f"run {run_id} ended early: {run.status} {run.error}"
    return False
