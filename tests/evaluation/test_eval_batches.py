"""Evaluation batches: two generation runs on one evaluation set become an annotation batch of kind evaluation, one
item per prompt, through the API, `manage.py make_eval_batch` and the admin action; bad pairs are refused with
nothing written; the batch is served through the real annotator API and its judgments reach the agreement API.

Generation runs are written directly (a generate run row, its Sampled link and Generation rows), as a worker leaves
them: real generation is tested in tests/trainer and tests/evaluation/test_closed_loop.py.
"""

import hashlib
import io
import random
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from annotation.models import Assignment, Batch, Item, Judgment
from annotation.services import criteria_version_create, member_add
from annotation.services.projects import DEFAULT_CRITERIA
from evaluation.errors import DifferentProjects
from evaluation.models import EvalPrompt, EvalSet, EvaluationBatch, EvaluationItem, Sampled
from evaluation.services.eval_batches import eval_batch_make
from rewards.services.snapshots import snapshot_compute
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory
from trainer.models import Generation, Kind, Status, TrainingRun

pytestmark = pytest.mark.django_db

URL = "/api/v1/projects/{}/evaluation-batches/"
# external id, stratum, category; p2 is a conversation.
PROMPTS = [
    ("p0", "usage", "maths"),
    ("p1", "red_team", "jailbreak"),
    ("p2", "synthetic", "chat"),
    ("p3", "adversarial", ""),
    ("p4", "usage", "maths"),
    ("p5", "red_team", "pii"),
    ("p6", "usage", "code"),
    ("p7", "other", "code"),
]
MESSAGES = [
    {"role": "user", "content": "Hello there."},
    {"role": "assistant", "content": "Hi! How can I help?"},
    {"role": "user", "content": "Tell me a joke."},
]


def make_eval_set(project, *, name: str = "held-out", prompts=PROMPTS) -> EvalSet:
    eval_set = EvalSet.objects.create(
        project=project,
        name=name,
        version=1,
        prompt_count=len(prompts),
        strata={},
        sha256="0" * 64,
        path=f"evaluation/{uuid.uuid4().hex}.jsonl",
    )
    for external_id, stratum, category in prompts:
        EvalPrompt.objects.create(
            eval_set=eval_set,
            external_id=external_id,
            prompt="" if external_id == "p2" else f"Question {external_id}?",
            messages=MESSAGES if external_id == "p2" else None,
            stratum=stratum,
            category=category,
            group=hashlib.sha256(external_id.encode()).hexdigest(),
        )
    return eval_set


def make_generation_run(
    eval_set: EvalSet,
    *,
    label: str,
    model_key: str | None = None,
    status: str = Status.SUCCEEDED,
    skip: tuple[str, ...] = (),
    project=None,
) -> Sampled:
    """A generate run as a worker leaves it: sample 0 (and a second sample, which must not be used) per prompt."""
    run = TrainingRun.objects.create(
        project=project or eval_set.project,
        kind=Kind.GENERATE,
        status=status,
        config={"base_model": "tiny", "n": 2},
        time_limit_seconds=60,
        finished_at=timezone.now() if status == Status.SUCCEEDED else None,
    )
    sampled = Sampled.objects.create(run=run, eval_set=eval_set, model_key=model_key or f"base:{label}", label=label)
    rows = []
    for n, prompt in enumerate(eval_set.prompts.order_by("pk")):
        if prompt.external_id in skip:
            continue
        for sample in (0, 1):
            text = f"{label} answers {prompt.external_id} (sample {sample})."
            rows.append(
                Generation(
                    run=run,
                    prompt_id=prompt.external_id,
                    sample=sample,
                    text=text,
                    token_count=10 + n + 100 * sample,
                    finish_reason="stop",
                )
            )
    Generation.objects.bulk_create(rows)
    return sampled


@pytest.fixture
def pair(project):
    eval_set = make_eval_set(project)
    return make_generation_run(eval_set, label="cand"), make_generation_run(eval_set, label="base")


def counts() -> tuple[int, int, int, int]:
    return Batch.objects.count(), Item.objects.count(), EvaluationBatch.objects.count(), EvaluationItem.objects.count()


# --- Making one --------------------------------------------------------------------------------------------------


def test_an_ml_engineer_makes_one_through_the_api(ml_engineer_client, project, pair):
    candidate, baseline = pair
    Generation.objects.filter(run=candidate.run, prompt_id="p1", sample=0).update(identity_leak=True)
    Generation.objects.filter(run=baseline.run, prompt_id="p1", sample=1).update(identity_leak=True)  # not served
    response = ml_engineer_client.post(
        URL.format(project.pk), {"candidate_run": candidate.run_id, "baseline_run": baseline.run_id}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    evaluation = EvaluationBatch.objects.get(pk=body["id"])
    batch = evaluation.batch
    assert body["batch"] == {
        "id": batch.pk,
        "name": "eval-held-out-v1-1",
        "kind": "evaluation",
        "status": "open",
        "criteria_version": 1,
        "closed_at": None,
    }
    assert body["candidate"]["run"] == candidate.run_id and body["baseline"]["run"] == baseline.run_id
    assert body["items"] == len(PROMPTS) and body["created_by"] == "mle"
    assert body["identity_leaks"] == {"candidate": 1, "baseline": 0}
    assert batch.kind == Batch.Kind.EVALUATION and batch.project == project
    assert (evaluation.candidate, evaluation.baseline, evaluation.eval_set) == (candidate, baseline, candidate.eval_set)

    items = list(EvaluationItem.objects.filter(evaluation_batch=evaluation).select_related("item", "prompt"))
    assert [e.prompt.external_id for e in items] == [p[0] for p in PROMPTS]
    for evaluation_item in items:
        item, prompt = evaluation_item.item, evaluation_item.prompt
        ext = prompt.external_id
        cand, base = f"cand answers {ext} (sample 0).", f"base answers {ext} (sample 0)."
        a, b = (cand, base) if evaluation_item.candidate_is_a else (base, cand)
        assert (item.response_a_text, item.response_b_text) == (a, b)
        assert item.response_a_model == item.response_b_model == ""  # the mapping lives in EvaluationItem only
        assert item.batch == batch and item.external_id == ext and item.gold == ""
        assert item.category == prompt.category
        assert item.stratum == {"red_team": "adversarial", "other": ""}.get(prompt.stratum, prompt.stratum)
        if ext == "p2":
            assert item.messages == MESSAGES and item.prompt == ""
        else:
            assert item.prompt == f"Question {ext}?" and item.messages is None
        n = [p[0] for p in PROMPTS].index(ext)
        assert evaluation_item.candidate_tokens == evaluation_item.baseline_tokens == 10 + n
    # Sides drawn per item, reproducibly from the batch id.
    sides = random.Random(f"tandem.evaluation_batch:{batch.pk}")
    assert [e.candidate_is_a for e in items] == [sides.random() < 0.5 for _ in items]

    listed = ml_engineer_client.get(URL.format(project.pk))
    assert listed.status_code == 200
    assert [(row["id"], row["items"], row["batch"]["name"]) for row in listed.json()] == [
        (evaluation.pk, len(PROMPTS), "eval-held-out-v1-1")
    ]


def test_sides_are_drawn_both_ways(project):
    eval_set = make_eval_set(project, prompts=[(f"q{n}", "usage", "") for n in range(40)])
    evaluation = eval_batch_make(
        candidate=make_generation_run(eval_set, label="c"), baseline=make_generation_run(eval_set, label="b")
    )
    share = evaluation.items.filter(candidate_is_a=True).count() / 40
    assert 0.2 < share < 0.8


def test_names_count_up_and_a_given_name_and_criteria_version_are_kept(lead_client, project, pair):
    candidate, baseline = pair
    body = {"candidate_run": candidate.run_id, "baseline_run": baseline.run_id}
    assert lead_client.post(URL.format(project.pk), body, format="json").json()["batch"]["name"] == "eval-held-out-v1-1"
    assert lead_client.post(URL.format(project.pk), body, format="json").json()["batch"]["name"] == "eval-held-out-v1-2"
    criteria_version_create(project=project, **DEFAULT_CRITERIA)  # v2 is now current
    named = lead_client.post(URL.format(project.pk), {**body, "name": "round 3", "criteria_version": 1}, format="json")
    assert named.status_code == 201, named.json()
    assert named.json()["batch"]["name"] == "round 3" and named.json()["batch"]["criteria_version"] == 1
    current = lead_client.post(URL.format(project.pk), body, format="json").json()
    assert current["batch"]["criteria_version"] == 2
    # The same name again: 409, nothing made.
    before = counts()
    again = lead_client.post(URL.format(project.pk), {**body, "name": "round 3"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "batch_name_taken"
    unknown = lead_client.post(URL.format(project.pk), {**body, "criteria_version": 9}, format="json")
    assert unknown.status_code == 400 and "criteria version 9" in unknown.json()["detail"]
    assert counts() == before


def test_the_command_makes_one_and_prints_its_id(project, pair):
    candidate, baseline = pair
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "make_eval_batch",
        "--candidate",
        str(candidate.run_id),
        "--baseline",
        str(baseline.run_id),
        "--name",
        "from the shell",
        stdout=out,
        stderr=err,
    )
    evaluation = EvaluationBatch.objects.get(pk=int(out.getvalue()))
    assert evaluation.batch.name == "from the shell" and evaluation.items.count() == len(PROMPTS)
    assert "8 item(s)" in err.getvalue()
    with pytest.raises(CommandError, match="same_run"):
        call_command("make_eval_batch", "--candidate", str(candidate.run_id), "--baseline", str(candidate.run_id))
    with pytest.raises(CommandError, match="not a generation run"):
        call_command("make_eval_batch", "--candidate", "999999", "--baseline", str(candidate.run_id))


def test_the_admin_action_asks_for_candidate_and_baseline(project, lead, pair):
    candidate, baseline = pair
    client = Client()
    client.force_login(lead)
    changelist = "/admin/evaluation/sampled/"
    selected = {"action": "make_evaluation_batch", "_selected_action": [candidate.pk, baseline.pk]}
    asked = client.post(changelist, selected)
    assert asked.status_code == 200 and b'name="candidate"' in asked.content and b'name="baseline"' in asked.content
    same = client.post(changelist, {**selected, "apply": "1", "candidate": baseline.pk, "baseline": baseline.pk})
    assert same.status_code == 200 and "two different runs" in same.content.decode()
    made = client.post(
        changelist, {**selected, "apply": "1", "candidate": baseline.pk, "baseline": candidate.pk}, follow=True
    )
    assert made.status_code == 200
    evaluation = EvaluationBatch.objects.get()
    assert (evaluation.candidate, evaluation.baseline) == (baseline, candidate)  # as chosen on the page
    assert f"Evaluation batch {evaluation.pk} made" in made.content.decode()

    # One selected run: the candidate; the baseline is picked among the set's other runs on the page.
    one = {"action": "make_evaluation_batch", "_selected_action": [candidate.pk]}
    assert b'name="baseline"' in client.post(changelist, one).content
    client.post(changelist, {**one, "apply": "1", "candidate": candidate.pk, "baseline": baseline.pk})
    assert EvaluationBatch.objects.count() == 2
    # A refusal of the service is shown, and nothing is made.
    late = make_generation_run(candidate.eval_set, label="late", status=Status.RUNNING)
    refused = client.post(changelist, {**one, "apply": "1", "candidate": late.pk, "baseline": baseline.pk}, follow=True)
    assert f"generation run {late.run_id}, is running" in refused.content.decode()
    assert EvaluationBatch.objects.count() == 2
    elsewhere = make_generation_run(make_eval_set(project, name="another"), label="x")
    mixed = client.post(changelist, {**selected, "_selected_action": [candidate.pk, elsewhere.pk]}, follow=True)
    assert "on one evaluation set" in mixed.content.decode()


def test_only_leads_and_ml_engineers_make_and_list_them(project, pair, annotator_client, stranger_client):
    candidate, baseline = pair
    body = {"candidate_run": candidate.run_id, "baseline_run": baseline.run_id}
    refused = annotator_client.post(URL.format(project.pk), body, format="json")
    assert refused.status_code == 403
    assert annotator_client.get(URL.format(project.pk)).status_code == 403
    assert stranger_client.post(URL.format(project.pk), body, format="json").status_code == 404
    assert stranger_client.get(URL.format(project.pk)).status_code == 404
    assert counts()[2] == 0


# --- Refusals, each with nothing written -------------------------------------------------------------------------


def refused(client, project, candidate_run: int, baseline_run: int, *, status: int, code: str) -> dict:
    before = counts()
    response = client.post(
        URL.format(project.pk), {"candidate_run": candidate_run, "baseline_run": baseline_run}, format="json"
    )
    assert response.status_code == status, response.json()
    assert response.json()["code"] == code, response.json()
    assert counts() == before
    return response.json()


def test_runs_on_two_sets_are_refused(ml_engineer_client, project, pair):
    other_set = make_eval_set(project, name="other set")
    other = make_generation_run(other_set, label="elsewhere")
    body = refused(ml_engineer_client, project, pair[0].run_id, other.run_id, status=400, code="different_eval_sets")
    assert "held-out v1" in body["detail"] and "other set v1" in body["detail"]


@pytest.mark.parametrize("status", [Status.QUEUED, Status.RUNNING, Status.FAILED, Status.CANCELLED, Status.LOST])
def test_an_unfinished_generation_run_is_refused_by_name_and_status(ml_engineer_client, project, pair, status):
    unfinished = make_generation_run(pair[0].eval_set, label="late", status=status)
    body = refused(
        ml_engineer_client, project, unfinished.run_id, pair[1].run_id, status=409, code="generation_unfinished"
    )
    assert (
        f"run {unfinished.run_id}" in body["detail"] and body["status"] == status and body["run"] == unfinished.run_id
    )
    body = refused(
        ml_engineer_client, project, pair[0].run_id, unfinished.run_id, status=409, code="generation_unfinished"
    )
    assert "baseline" in body["detail"]


def test_the_same_run_twice_is_refused(ml_engineer_client, project, pair):
    refused(ml_engineer_client, project, pair[0].run_id, pair[0].run_id, status=400, code="same_run")


def test_runs_of_another_project_are_refused(ml_engineer_client, project, pair):
    elsewhere = ProjectFactory(name="Elsewhere")
    foreign = make_generation_run(make_eval_set(elsewhere), label="foreign")
    # Through the API another project's run reads as a missing one; the service names the mismatch.
    refused(ml_engineer_client, project, pair[0].run_id, foreign.run_id, status=400, code="not_generation_run")
    before = counts()
    with pytest.raises(DifferentProjects):
        eval_batch_make(candidate=pair[0], baseline=foreign)
    assert counts() == before


def test_a_run_that_is_no_generation_run_is_refused(ml_engineer_client, project, pair):
    plain = TrainingRun.objects.create(
        project=project, kind=Kind.GENERATE, status=Status.SUCCEEDED, config={}, time_limit_seconds=60
    )
    refused(ml_engineer_client, project, pair[0].run_id, plain.pk, status=400, code="not_generation_run")


def test_prompts_without_a_response_are_named(ml_engineer_client, project, pair):
    gappy = make_generation_run(pair[0].eval_set, label="gappy", skip=("p3", "p5"))
    body = refused(ml_engineer_client, project, pair[0].run_id, gappy.run_id, status=409, code="generations_missing")
    assert "p3, p5" in body["detail"] and f"run {gappy.run_id}" in body["detail"]
    assert body["missing"] == {str(gappy.run_id): ["p3", "p5"]}


# --- Served like any other batch ---------------------------------------------------------------------------------


def test_annotators_judge_it_through_the_annotator_api_and_the_agreement_api_reads_it(
    project, pair, lead_client, annotator_client
):
    project.overlap = project.max_overlap = 2
    project.gold_rate = 0.0
    project.save()
    evaluation = eval_batch_make(candidate=pair[0], baseline=pair[1], name="blind round")
    clients = [annotator_client]
    for n in range(1, 2):
        user = UserFactory(username=f"ann-{n}")
        member_add(project=project, username=user.username, role="annotator")
        client = Client()
        client.force_login(user)
        clients.append(client)
    judged = 0
    for client in clients:
        session_id = client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
        while True:
            shown = client.get(f"/api/v1/sessions/{session_id}/next/")
            if shown.status_code == 204:
                break
            assert shown.status_code == 200
            body = shown.json()
            assert "cand" not in str(body.keys()) and body["left"]["text"] != body["right"]["text"]
            assignment = Assignment.objects.get(pk=body["assignment_id"])
            # The candidate's side, as only a test can tell: it always wins here.
            candidate_left = assignment.item.evaluation.candidate_is_a == assignment.left_is_a
            assert body["left" if candidate_left else "right"]["text"].startswith("cand answers")
            answer = client.post(
                f"/api/v1/assignments/{body['assignment_id']}/judgment/",
                {"choice": "left" if candidate_left else "right"},
                content_type="application/json",
            )
            assert answer.status_code == 201, answer.content
            judged += 1
    batch = evaluation.batch
    assert judged == 2 * len(PROMPTS)
    judgments = Judgment.objects.filter(batch=batch)
    assert judgments.count() == judged
    for judgment in judgments.select_related("item__evaluation"):
        assert judgment.choice == ("a" if judgment.item.evaluation.candidate_is_a else "b")

    snapshot_compute(batch=batch)
    agreement = lead_client.get(f"/api/v1/projects/{project.pk}/agreement/")
    assert agreement.status_code == 200, agreement.content
    assert batch.name in agreement.content.decode()
    assert lead_client.post(f"/api/v1/batches/{batch.pk}/close/").status_code == 200


def test_gold_items_of_the_project_are_mixed_in(project, annotator_client):
    """Gold is not copied into the evaluation batch: the engine serves the project's open gold beside it."""
    project.gold_rate = 0.5
    project.save()
    gold_batch = BatchFactory(project=project, name="gold source")
    ItemFactory.create_batch(6, batch=gold_batch, gold="a")
    eval_set = make_eval_set(project)
    evaluation = eval_batch_make(
        candidate=make_generation_run(eval_set, label="c"), baseline=make_generation_run(eval_set, label="b")
    )
    assert not evaluation.batch.items.exclude(gold="").exists()
    session_id = annotator_client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    served_batches = []
    while (shown := annotator_client.get(f"/api/v1/sessions/{session_id}/next/")).status_code == 200:
        assignment = Assignment.objects.select_related("item").get(pk=shown.json()["assignment_id"])
        served_batches.append(assignment.item.batch_id)
        annotator_client.post(f"/api/v1/assignments/{assignment.pk}/judgment/", {"choice": "left"}, format="json")
    assert served_batches.count(evaluation.batch_id) == len(PROMPTS)
    assert gold_batch.pk in served_batches
