"""Blinding: nothing an annotator can reach says which model wrote a response, which side is A, whether an item is
gold, what an item is called outside the page, or what anyone else chose.

The test walks every endpoint and page an annotator can reach, down every status code of the contract, with
distinctive model names, gold items and other annotators' judgments in the database, and searches every body
and header it was sent. Pages come from frontend/urls.py, so a new page is walked (or fails this test) at once.
"""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

import frontend.urls
from annotation.models import AnnotationSession, Assignment, Batch, Item, Judgment
from annotation.services import member_add
from annotation.services.assignments import assignment_next
from annotation.services.judgments import judgment_submit
from annotation.services.sessions import session_start
from tests.factories import BatchFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

MODEL_NAMES = ("secret-model-xyz", "rival-model-qq7")
ITEM_PKS = range(7_340_001, 7_340_013)
OTHER_JUSTIFICATION = "other-annotator-reasoning-zz9"
# Words and keys that would give away gold, A/B, models or others' votes, in any body or header.
FORBIDDEN_TEXT = ("gold", "response_a", "response_b", "is_gold", "shown_left", "left_is_a", "judgment_count")
FORBIDDEN_JSON_KEYS = {"a", "b", "model", "gold", "is_gold", "votes", "agreement", "choice_a", "external_id", "item"}
FORBIDDEN_JSON_VALUES = {"a", "b", "A", "B"}


class Walker:
    """An annotator's clients (API token-less and page session) that keep every response they were sent."""

    def __init__(self, user):
        self.api = APIClient()
        self.api.force_authenticate(user)
        self.browser = APIClient()
        self.browser.force_login(user)
        self.seen = []  # (label, response)

    def call(self, label: str, method: str, url: str, *, expect: int | tuple, page: bool = False, **body):
        client = self.browser if page else self.api
        response = getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)
        expected = expect if isinstance(expect, tuple) else (expect,)
        assert response.status_code in expected, f"{label}: {method.upper()} {url} → {response.status_code}"
        self.seen.append((label, response))
        return response


@pytest.fixture
def world(db):
    """A project with gold and regular items by distinctive models, and two other annotators' judgments on it."""
    project = ProjectFactory(name="Blind", overlap=3, max_overlap=3, gold_rate=0.6, session_max_tasks=100)
    batch = BatchFactory(project=project, name="b1")
    items = []
    for n, pk in enumerate(ITEM_PKS):
        a_model, b_model = MODEL_NAMES if n % 2 else reversed(MODEL_NAMES)
        items.append(
            Item(
                pk=pk,
                project=project,
                batch=batch,
                external_id=f"ext-secret-{pk}",
                dedupe_key=f"id:ext-secret-{pk}",
                prompt=f"Question {n}: which is better?",
                response_a_text=f"The first response, number {n}.",
                response_a_model=a_model,
                response_b_text=f"Another response, number {n}, written differently.",
                response_b_model=b_model,
                gold=["a", "b", "tie"][n % 3] if n < 4 else "",
            )
        )
    Item.objects.bulk_create(items)
    walker_user = UserFactory(username="walker")
    member_add(project=project, username="walker", role="annotator")
    others = []
    for n in range(2):
        other = UserFactory(username=f"other-annotator-{n}")
        member_add(project=project, username=other.username, role="annotator")
        session, _ = session_start(project=project, annotator=other)
        for _ in range(5):
            assignment = assignment_next(session=session)
            judgment_submit(
                assignment_id=assignment.pk,
                annotator_id=other.pk,
                choice=["left", "right", "tie"][n],
                justification=f"{OTHER_JUSTIFICATION} {n}",
            )
        others.append(other)
    # One open lease of someone else's, for the "not yours" answer.
    stranger_lease = assignment_next(session=session_start(project=project, annotator=others[0])[0])
    other_project = ProjectFactory(name="Not yours")
    return {
        "project": project,
        "batch": batch,
        "walker": walker_user,
        "others": others,
        "lease": stranger_lease,
        "other_project": other_project,
    }


def walk_api(walker: Walker, world) -> list[dict]:
    project, batch = world["project"], world["batch"]
    served = []
    walker.call("projects", "get", "/api/v1/projects/", expect=200)
    walker.call("unknown project", "post", "/api/v1/projects/99999999/sessions/", expect=404)
    walker.call("not a member", "post", f"/api/v1/projects/{world['other_project'].pk}/sessions/", expect=404)
    walker.call(
        "lead only: members",
        "post",
        f"/api/v1/projects/{project.pk}/members/",
        expect=403,
        username="walker",
        role="lead",
    )
    walker.call("lead only: import", "post", f"/api/v1/projects/{project.pk}/imports/", expect=403)
    session_id = walker.call("start", "post", f"/api/v1/projects/{project.pk}/sessions/", expect=201).json()["id"]
    walker.call("start again", "post", f"/api/v1/projects/{project.pk}/sessions/", expect=200)
    walker.call("session", "get", f"/api/v1/sessions/{session_id}/", expect=200)
    other_session = world["lease"].session_id
    walker.call("someone else's session", "get", f"/api/v1/sessions/{other_session}/", expect=404)
    walker.call("someone else's next", "get", f"/api/v1/sessions/{other_session}/next/", expect=404)
    walker.call(
        "someone else's lease", "post", f"/api/v1/assignments/{world['lease'].pk}/judgment/", expect=404, choice="left"
    )
    walker.call(
        "no such assignment",
        "post",
        "/api/v1/assignments/00000000-0000-0000-0000-000000000000/judgment/",
        expect=404,
        choice="left",
    )
    # Skip, report, renew and revise answer only their owner: someone else's read as missing ones.
    for action, body in (("skip", {}), ("report", {"kind": "broken"}), ("renew", {})):
        url = f"/api/v1/assignments/{world['lease'].pk}/{action}/"
        walker.call(f"someone else's {action}", "post", url, expect=404, **body)
    others_judgment = Judgment.objects.filter(annotator=world["others"][0]).first()
    walker.call(
        "someone else's revision",
        "post",
        f"/api/v1/judgments/{others_judgment.pk}/revision/",
        expect=404,
        choice="right",
    )

    def judge(label, assignment_id, expect, **body):
        return walker.call(label, "post", f"/api/v1/assignments/{assignment_id}/judgment/", expect=expect, **body)

    overlap_full_seen = revised = False
    for step in range(len(ITEM_PKS) + 1):
        shown = walker.call(f"next {step}", "get", f"/api/v1/sessions/{session_id}/next/", expect=(200, 204))
        if shown.status_code == 204:
            break
        body = shown.json()
        served.append(body)
        assignment_id = body["assignment_id"]
        walker.call(f"reload {step}", "get", f"/api/v1/sessions/{session_id}/next/", expect=200)
        if step == 0:
            walker.call("renew", "post", f"/api/v1/assignments/{assignment_id}/renew/", expect=200)
            judge("invalid choice", assignment_id, 400, choice="a")
            judge("unknown dimension", assignment_id, 400, choice="left", dimensions={"nonsense": "left"})
            judge("bad dimension answer", assignment_id, 400, choice="left", dimensions={"honesty": "b"})
        if step == 1:
            Assignment.objects.filter(pk=assignment_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
            judge("lease expired", assignment_id, 410, choice="left")
            continue
        if step in (4, 5):
            action, body = ("skip", {"reason": "unsure"}) if step == 4 else ("report", {"kind": "out_of_scope"})
            walker.call(action, "post", f"/api/v1/assignments/{assignment_id}/{action}/", expect=(200, 201), **body)
            judge(f"judge after {action}", assignment_id, 410, choice="left")
            continue
        if step == 2:
            Batch.objects.filter(pk=batch.pk).update(status="closed")
            judge("batch closed", assignment_id, 410, choice="left")
            Batch.objects.filter(pk=batch.pk).update(status="open")
        if step >= 3 and not overlap_full_seen:
            item = Assignment.objects.get(pk=assignment_id).item
            if not item.gold:
                overlap_full_seen = True
                Item.objects.filter(pk=item.pk).update(judgment_count=3)
                judge("overlap full", assignment_id, 410, choice="left")
                Item.objects.filter(pk=item.pk).update(judgment_count=item.judgment_count)
        judge(f"judge {step}", assignment_id, 201, choice="left", dimensions={"honesty": "right"}, justification="ok")
        judge(f"retry {step}", assignment_id, 200, choice="left", dimensions={"honesty": "right"}, justification="ok")
        judge(f"conflict {step}", assignment_id, 409, choice="right")
        item = Assignment.objects.get(pk=assignment_id).item
        if step >= 3 and not revised and not item.gold:
            revised = True
            walk_revision(walker, Judgment.objects.get(assignment_id=assignment_id), item)
    else:
        pytest.fail("next never answered 204")
    AnnotationSession.objects.filter(pk=session_id).update(tasks_done=100)
    walker.call("session limit", "get", f"/api/v1/sessions/{session_id}/next/", expect=410)
    AnnotationSession.objects.filter(pk=session_id).update(ended_at=timezone.now())
    walker.call("on break", "post", f"/api/v1/projects/{project.pk}/sessions/", expect=429)
    return served


def walk_revision(walker: Walker, judgment, item) -> None:
    """Revise within the window (and the same answer again), then once the item is complete and after the window."""
    url = f"/api/v1/judgments/{judgment.pk}/revision/"
    Item.objects.filter(pk=item.pk).update(judgment_count=0)  # open, whatever others did
    walker.call("revise", "post", url, expect=201, choice="right", justification="changed my mind")
    walker.call("revise, same", "post", url, expect=200, choice="right", justification="changed my mind")
    Item.objects.filter(pk=item.pk).update(judgment_count=3)
    walker.call("revise, item complete", "post", url, expect=409, choice="tie")
    Item.objects.filter(pk=item.pk).update(judgment_count=item.judgment_count)
    Judgment.objects.filter(pk=judgment.pk).update(created_at=timezone.now() - timedelta(hours=1))
    walker.call("revise, window closed", "post", url, expect=410, choice="tie")


# Pages for leads and ML engineers: an annotator is refused them, and the refusal is walked for leaks too.
NOT_FOR_ANNOTATORS = (
    "run",
    "lead-home",
    "lead-project",
    "lead-annotator",
    "lead-annotator-judgments",
    "lead-split-items",
    "checkpoints",
    "generations",
    "gate",
    "releases",
    "lead-demonstrations",
)


def page_urls(world) -> list[tuple[str, int | tuple[int, ...]]]:
    """Every page in frontend/urls.py, filled in for the walker's project and session, with the status the
    walker should get."""
    values = {"project_id": world["project"].pk, "user_id": world["walker"].pk, "run_id": 1, "evaluation_batch_id": 1}
    urls = []

    def visit(patterns, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                visit(pattern.url_patterns, f"{namespace}:{pattern.namespace}" if pattern.namespace else namespace)
            elif isinstance(pattern, URLPattern):
                names = list(pattern.pattern.converters)
                missing = [n for n in names if n not in values]
                if missing:
                    pytest.fail(f"page {pattern.name!r} takes {missing}: teach test_blinding.py to fill them in")
                url = reverse(f"{namespace}:{pattern.name}", kwargs={n: values[n] for n in names})
                urls.append((url, (403, 404) if pattern.name in NOT_FOR_ANNOTATORS else 200))

    visit(frontend.urls.urlpatterns, frontend.urls.app_name)
    return urls


STATIC_REF = re.compile(r"""(?:src|href)=["'](/static/[^"'?#]+)""")
JS_IMPORT = re.compile(r"""(?:import|from)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""")


def static_files_of(html: str) -> dict[str, str]:
    """The scripts, styles and images a page loads, and the modules those scripts import, as the browser gets them."""
    pending = [ref.removeprefix("/static/") for ref in STATIC_REF.findall(html)]
    found = {}
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = finders.find(name)
        assert path, f"the page refers to /static/{name}, which does not exist"
        found[name] = Path(path).read_text(encoding="utf-8", errors="replace")
        if name.endswith(".js"):
            base = name.rsplit("/", 1)[0]
            pending += [str(Path(base, ref)).replace("/./", "/") for ref in JS_IMPORT.findall(found[name])]
    return found


def secrets_of(world) -> list[str]:
    others = [u.username for u in world["others"]]
    justifications = list(Judgment.objects.exclude(justification="ok").values_list("justification", flat=True))
    assert justifications, "the other annotators' judgments are missing"
    return [
        *MODEL_NAMES,
        *(str(pk) for pk in ITEM_PKS),
        *(f"ext-secret-{pk}" for pk in ITEM_PKS),
        *others,
        *justifications,
        OTHER_JUSTIFICATION,
        *FORBIDDEN_TEXT,
    ]


def leaks_in_json(value, where: str) -> list[str]:
    found = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if str(key).lower() in FORBIDDEN_JSON_KEYS:
                found.append(f"{where}: key {key!r}")
            found += leaks_in_json(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            found += leaks_in_json(inner, f"{where}[{n}]")
    elif isinstance(value, str) and value in FORBIDDEN_JSON_VALUES:
        found.append(f"{where}: value {value!r}")
    return found


def leaks(label: str, text: str, headers: dict, secrets: list[str], *, is_json: bool) -> list[str]:
    found = []
    haystacks = {"body": text.lower(), "headers": json.dumps(headers).lower()}
    for part, haystack in haystacks.items():
        found += [f"{label} {part}: {secret!r}" for secret in secrets if secret.lower() in haystack]
    if is_json and text:
        found += leaks_in_json(json.loads(text), label)
        found += [f"{label} body: {ab}" for ab in ('"a"', '"b"', '"A"', '"B"') if ab in text]
    return found


def test_nothing_an_annotator_can_reach_gives_away_models_sides_gold_or_others(world):
    walker = Walker(world["walker"])
    served = walk_api(walker, world)
    assert len(served) >= 6
    gold_served = Item.objects.filter(assignments__annotator=world["walker"]).exclude(gold="").count()
    assert gold_served >= 1, "the walk met no gold item: it proves nothing about gold"

    for url, expect in page_urls(world):
        walker.call(f"page {url}", "get", url, expect=expect, page=True)
    walker.call("login page", "get", reverse("login"), expect=200, page=True)
    walker.call("not a member's page", "get", f"/annotate/{world['other_project'].pk}/", expect=(403, 404), page=True)

    statuses = {r.status_code for _l, r in walker.seen}
    assert statuses >= {200, 201, 204, 400, 403, 404, 409, 410, 429}, statuses
    codes = {r.json().get("code") for _l, r in walker.seen if r.status_code == 410}
    assert codes == {"lease_expired", "batch_closed", "overlap_full", "session_limit", "revise_window_closed"}, codes
    conflicts = {r.json().get("code") for _l, r in walker.seen if r.status_code == 409}
    assert conflicts == {"conflict", "item_complete"}, conflicts

    secrets = secrets_of(world)
    problems = []
    pages = {}
    for label, response in walker.seen:
        text = response.content.decode("utf-8", errors="replace")
        is_json = response.get("Content-Type", "").startswith("application/json")
        problems += leaks(label, text, dict(response.headers), secrets, is_json=is_json)
        if response.get("Content-Type", "").startswith("text/html"):
            pages[label] = text
    assets = {}
    for label, html in pages.items():
        for name, source in static_files_of(html).items():
            assets[name] = source
            problems += leaks(f"{label} → /static/{name}", source, {}, secrets, is_json=False)
    assert problems == []
    assert len(pages) >= 3 and any(name.endswith(".js") for name in assets), "the walk reached no page or script"

    # Gold items look exactly like the others: same fields, same values apart from the item's own text and ids.
    own = {"assignment_id", "prompt", "messages", "left", "right", "lease_expires_at"}
    gold_ids = set(Item.objects.exclude(gold="").values_list("assignments__pk", flat=True))
    shapes = {
        json.dumps({k: v for k, v in body.items() if k not in own}, sort_keys=True)
        + repr(sorted(body))
        + repr(sorted(body["left"]))
        for body in served
    }
    assert len(shapes) == 1, shapes
    assert {str(a) for a in gold_ids} & {body["assignment_id"] for body in served}

    # The response ids the page gets are opaque per assignment: none repeats, none carries an item's id.
    ids = [body[side]["id"] for body in served for side in ("left", "right")]
    assert len(ids) == len(set(ids))


def test_the_same_item_gets_unrelated_response_ids_for_two_annotators(world):
    project = world["project"]
    Item.objects.filter(project=project).exclude(pk=ITEM_PKS[-1]).update(judgment_count=3, gold="")
    Item.objects.filter(pk=ITEM_PKS[-1]).update(gold="", judgment_count=0)
    Assignment.objects.filter(item_id=ITEM_PKS[-1]).delete()
    shown = []
    for username in ("walker", "late-comer"):
        user = UserFactory(username=username)
        member_add(project=project, username=username, role="annotator")
        client = APIClient()
        client.force_authenticate(user)
        session_id = client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
        body = client.get(f"/api/v1/sessions/{session_id}/next/").json()
        assert Assignment.objects.get(pk=body["assignment_id"]).item_id == ITEM_PKS[-1]
        shown.append(body)
    first, second = shown
    assert {first["left"]["id"], first["right"]["id"]}.isdisjoint({second["left"]["id"], second["right"]["id"]})


# --- Evaluation batches -------------------------------------------------------------------------------------------
# Two checkpoints' responses judged against each other: nothing an annotator can reach may name the checkpoint, the
# run, the model, the evaluation set, or say which side is the candidate. Every name below is distinctive, so a leak
# anywhere (a body, a header, a page, a script) is found by plain search.

EVAL_RUN_PKS = (8_812_345, 8_812_346, 8_812_347)  # the policy run, the candidate's and the baseline's generate runs
EVAL_CHECKPOINT_FOLDER = "runs/ckpt-secret-folder-5521/step-40"
EVAL_SET_NAME = "held-out-secret-set"
EVAL_PROMPT_IDS = tuple(f"evalprompt-secret-{n}" for n in range(8))
# Words that say what the batch is, for API bodies, headers and pages (a stylesheet may well say "baseline").
EVAL_WORDS = ("candidate", "baseline", "checkpoint", "sampled", "model_key", "generation run")
# The evaluation doors an annotator is refused: their refusals may name the door ("... can see generation runs").
EVAL_DOORS = (
    "evaluation batches",
    "generation runs",
    "evaluation sets",
    "leaderboard",
    "results",
    "evaluation set",
    "a run",
    "make an evaluation batch",
)


@pytest.fixture
def eval_world(db, settings, tmp_path):
    """A project whose open batches are an evaluation batch (made by evaluation's service from two generation runs
    with distinctive names) and a batch holding the project's gold, with two other annotators' judgments on them."""
    from evaluation.models import EvalPrompt, EvalSet, Sampled
    from evaluation.services.eval_batches import eval_batch_make
    from tests.trainer.runs_fixtures import make_snapshot
    from trainer.models import Checkpoint, Generation, Kind, Status, TrainingRun

    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    project = ProjectFactory(name="Blind evaluation", overlap=3, max_overlap=3, gold_rate=0.6, session_max_tasks=100)
    gold_batch = BatchFactory(project=project, name="gold-source")
    Item.objects.bulk_create(
        Item(
            pk=pk,
            project=project,
            batch=gold_batch,
            external_id=f"ext-secret-{pk}",
            dedupe_key=f"id:ext-secret-{pk}",
            prompt=f"Probe question {n}: which is better?",
            response_a_text=f"The first response, number {n}.",
            response_a_model=MODEL_NAMES[n % 2],
            response_b_text=f"Another response, number {n}, written differently.",
            response_b_model=MODEL_NAMES[(n + 1) % 2],
            gold=["a", "b", "tie", "a"][n],
        )
        for n, pk in enumerate(ITEM_PKS[:4])
    )
    snapshot = make_snapshot(project, pairs=4)  # a closed training batch: never served
    policy = TrainingRun.objects.create(
        pk=EVAL_RUN_PKS[0],
        project=project,
        kind=Kind.DPO,
        status=Status.SUCCEEDED,
        config={"base_model": f"/models/{MODEL_NAMES[0]}"},
        snapshot=snapshot,
        time_limit_seconds=60,
    )
    checkpoint = Checkpoint.objects.create(run=policy, step=40, folder=EVAL_CHECKPOINT_FOLDER)
    eval_set = EvalSet.objects.create(
        project=project,
        name=EVAL_SET_NAME,
        version=1,
        prompt_count=len(EVAL_PROMPT_IDS),
        strata={"usage": 4, "red_team": 4},
        sha256="0" * 64,
        path="evaluation/secret.jsonl",
    )
    prompts = EvalPrompt.objects.bulk_create(
        EvalPrompt(
            eval_set=eval_set,
            external_id=external_id,
            prompt=f"Evaluation question {n}: what would you do?",
            stratum=["usage", "red_team"][n % 2],
            category="secret-category-ab3",
            group=f"{n:064d}",
        )
        for n, external_id in enumerate(EVAL_PROMPT_IDS)
    )
    sides = []
    for pk, checkpoint_row, key, label in (
        (EVAL_RUN_PKS[1], checkpoint, f"checkpoint:{checkpoint.pk}", f"{MODEL_NAMES[1]} run {policy.pk} step 40"),
        (EVAL_RUN_PKS[2], None, f"base:/models/{MODEL_NAMES[0]}", f"{MODEL_NAMES[0]} base"),
    ):
        run = TrainingRun.objects.create(
            pk=pk,
            project=project,
            kind=Kind.GENERATE,
            status=Status.SUCCEEDED,
            config={"model": key},
            sampled_checkpoint=checkpoint_row,
            time_limit_seconds=60,
        )
        Generation.objects.bulk_create(
            Generation(
                run=run,
                prompt_id=prompt.external_id,
                text=f"Reply {n} of the {'first' if checkpoint_row else 'second'} kind, plainly written.",
                token_count=12 + n,
                finish_reason="stop",
            )
            for n, prompt in enumerate(prompts)
        )
        sides.append(Sampled.objects.create(run=run, eval_set=eval_set, model_key=key, label=label))
    evaluation = eval_batch_make(candidate=sides[0], baseline=sides[1])

    walker_user = UserFactory(username="walker")
    member_add(project=project, username="walker", role="annotator")
    others = []
    for n in range(2):
        other = UserFactory(username=f"other-annotator-{n}")
        member_add(project=project, username=other.username, role="annotator")
        session, _ = session_start(project=project, annotator=other)
        for _ in range(4):
            assignment = assignment_next(session=session)
            judgment_submit(
                assignment_id=assignment.pk,
                annotator_id=other.pk,
                choice=["left", "right"][n],
                justification=f"{OTHER_JUSTIFICATION} {n}",
            )
        others.append(other)
    stranger_lease = assignment_next(session=session_start(project=project, annotator=others[0])[0])
    return {
        "project": project,
        "batch": evaluation.batch,
        "evaluation": evaluation,
        "sides": sides,
        "checkpoint": checkpoint,
        "walker": walker_user,
        "others": others,
        "lease": stranger_lease,
        "other_project": ProjectFactory(name="Not yours"),
    }


def walk_evaluation(walker: Walker, world) -> list[dict]:
    """The annotator's doors with an evaluation batch open: the evaluation API's refusals, then the loop down every
    answer (renew, lease expired, batch closed, skip, report, judge, retry, conflict, revise, limits)."""
    project, evaluation = world["project"], world["evaluation"]
    candidate, baseline = world["sides"]
    walker.call("projects", "get", "/api/v1/projects/", expect=200)
    for label, url in (
        ("evaluation batches", f"/api/v1/projects/{project.pk}/evaluation-batches/"),
        ("generation runs", f"/api/v1/projects/{project.pk}/generation-runs/"),
        ("evaluation sets", f"/api/v1/projects/{project.pk}/eval-sets/"),
        ("leaderboard", f"/api/v1/projects/{project.pk}/leaderboard/"),
        ("results", f"/api/v1/evaluation-batches/{evaluation.pk}/results/"),
        ("evaluation set", f"/api/v1/eval-sets/{evaluation.eval_set_id}/"),
        ("a run", f"/api/v1/runs/{candidate.run_id}/"),
        ("gate policies", f"/api/v1/projects/{project.pk}/gate-policies/"),
        ("the gate", f"/api/v1/evaluation-batches/{evaluation.pk}/gate/"),
        ("releases", f"/api/v1/projects/{project.pk}/releases/"),
        ("audit log", f"/api/v1/projects/{project.pk}/audit/"),
    ):
        walker.call(label, "get", url, expect=(403, 404))
    walker.call(
        "decide",
        "post",
        f"/api/v1/evaluation-batches/{evaluation.pk}/decisions/",
        expect=403,
        verdict="approve",
        note="x",
    )
    walker.call(
        "make an evaluation batch",
        "post",
        f"/api/v1/projects/{project.pk}/evaluation-batches/",
        expect=403,
        candidate_run=candidate.run_id,
        baseline_run=baseline.run_id,
    )
    session_id = walker.call("start", "post", f"/api/v1/projects/{project.pk}/sessions/", expect=201).json()["id"]
    walker.call("session", "get", f"/api/v1/sessions/{session_id}/", expect=200)
    other_session = world["lease"].session_id
    walker.call("someone else's next", "get", f"/api/v1/sessions/{other_session}/next/", expect=404)

    def judge(label, assignment_id, expect, **body):
        return walker.call(label, "post", f"/api/v1/assignments/{assignment_id}/judgment/", expect=expect, **body)

    served, revised = [], False
    for step in range(40):
        shown = walker.call(f"next {step}", "get", f"/api/v1/sessions/{session_id}/next/", expect=(200, 204))
        if shown.status_code == 204:
            break
        body = shown.json()
        served.append(body)
        assignment_id = body["assignment_id"]
        walker.call(f"reload {step}", "get", f"/api/v1/sessions/{session_id}/next/", expect=200)
        item = Assignment.objects.get(pk=assignment_id).item
        if step == 0:
            walker.call("renew", "post", f"/api/v1/assignments/{assignment_id}/renew/", expect=200)
            judge("invalid choice", assignment_id, 400, choice="a")
        if step == 1:
            Assignment.objects.filter(pk=assignment_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
            judge("lease expired", assignment_id, 410, choice="left")
            continue
        if step == 2:
            Batch.objects.filter(pk=item.batch_id).update(status="closed")
            judge("batch closed", assignment_id, 410, choice="left")
            Batch.objects.filter(pk=item.batch_id).update(status="open")
        if step in (3, 4):
            action, extra = ("skip", {"reason": "unsure"}) if step == 3 else ("report", {"kind": "broken"})
            walker.call(action, "post", f"/api/v1/assignments/{assignment_id}/{action}/", expect=(200, 201), **extra)
            continue
        judge(f"judge {step}", assignment_id, 201, choice="right", justification="ok")
        judge(f"retry {step}", assignment_id, 200, choice="right", justification="ok")
        judge(f"conflict {step}", assignment_id, 409, choice="left")
        item.refresh_from_db()
        still_open = item.judgment_count < item.project.overlap + item.extra_judgments
        if not revised and item.batch_id == evaluation.batch_id and still_open:  # a complete item is not revisable
            revised = True
            url = f"/api/v1/judgments/{Judgment.objects.get(assignment_id=assignment_id).pk}/revision/"
            walker.call("revise", "post", url, expect=201, choice="tie", justification="on reflection")
    else:
        pytest.fail("next never answered 204")
    assert revised, "no evaluation item was left open to revise a judgment on"
    AnnotationSession.objects.filter(pk=session_id).update(tasks_done=100)
    walker.call("session limit", "get", f"/api/v1/sessions/{session_id}/next/", expect=410)
    AnnotationSession.objects.filter(pk=session_id).update(ended_at=timezone.now())
    walker.call("on break", "post", f"/api/v1/projects/{project.pk}/sessions/", expect=429)
    return served


def test_an_evaluation_batch_names_no_checkpoint_run_or_model_to_annotators(eval_world):
    walker = Walker(eval_world["walker"])
    served = walk_evaluation(walker, eval_world)
    evaluation, checkpoint = eval_world["evaluation"], eval_world["checkpoint"]
    mine = Item.objects.filter(assignments__annotator=eval_world["walker"])
    assert mine.filter(batch=evaluation.batch).count() >= 5, "the walk met too few evaluation items"
    assert mine.exclude(gold="").exists(), "the walk met no gold item: gold is mixed into evaluation sessions"

    for url, expect in page_urls(eval_world):
        walker.call(f"page {url}", "get", url, expect=expect, page=True)

    names = [
        *MODEL_NAMES,
        *(str(pk) for pk in EVAL_RUN_PKS),
        *(str(pk) for pk in ITEM_PKS),
        *(f"ext-secret-{pk}" for pk in ITEM_PKS),
        EVAL_CHECKPOINT_FOLDER,
        "ckpt-secret-folder-5521",
        f"checkpoint:{checkpoint.pk}",
        EVAL_SET_NAME,
        "secret-category-ab3",
        *EVAL_PROMPT_IDS,
        evaluation.batch.name,
        *(side.label for side in eval_world["sides"]),
        *(side.model_key for side in eval_world["sides"]),
        *(u.username for u in eval_world["others"]),
        OTHER_JUSTIFICATION,
        *FORBIDDEN_TEXT,
    ]
    problems = []
    pages = {}
    for label, response in walker.seen:
        text = response.content.decode("utf-8", errors="replace")
        is_json = response.get("Content-Type", "").startswith("application/json")
        refused_door = response.status_code in (403, 404) and (label in EVAL_DOORS or label.startswith("page"))
        words = [] if refused_door else list(EVAL_WORDS)
        problems += leaks(label, text, dict(response.headers), [*names, *words], is_json=is_json)
        if response.get("Content-Type", "").startswith("text/html"):
            pages[label] = text
    for label, html in pages.items():
        for name, source in static_files_of(html).items():
            problems += leaks(f"{label} → /static/{name}", source, {}, names, is_json=False)
    assert problems == []
    assert pages, "the walk reached no page"

    # An evaluation item and a gold item of another batch look alike: same fields, same values but their own.
    own = {"assignment_id", "prompt", "messages", "left", "right", "lease_expires_at"}
    shapes = {
        json.dumps({k: v for k, v in body.items() if k not in own}, sort_keys=True)
        + repr(sorted(body))
        + repr(sorted(body["left"]))
        for body in served
    }
    assert len(shapes) == 1, shapes


# --- Qualification ----------------------------------------------------------------------------------------------
# A new annotator answering the project's qualification set (annotation.services.qualification) learns their
# progress and, at the end, their score: never which answer was right, how one answer was scored, or that the items
# have model names; the lead's qualification doors refuse them.

QUAL_MODELS = ("qual-secret-model-k2", "qual-rival-model-p9")


def test_qualification_says_nothing_about_any_answer(db):
    project = ProjectFactory(
        name="Blind qualification", qualification_required=True, qualification_size=4, qualification_threshold=0.75
    )
    qualification = BatchFactory(project=project, name="qual-secret-batch", kind=Batch.Kind.QUALIFICATION)
    for n in range(6):
        Item.objects.create(
            project=project,
            batch=qualification,
            external_id=f"qual-secret-{n}",
            dedupe_key=f"id:qual-secret-{n}",
            prompt=f"Qualification question {n}?",
            response_a_text=f"One response {n}.",
            response_a_model=QUAL_MODELS[n % 2],
            response_b_text=f"Another response {n}, longer.",
            response_b_model=QUAL_MODELS[1 - n % 2],
            gold=["a", "b", "tie"][n % 3],
        )
    walker_user = UserFactory(username="walker")
    member_add(project=project, username="walker", role="annotator")
    walker = Walker(walker_user)
    for label, method, url in (
        ("lead only: qualification list", "get", f"/api/v1/projects/{project.pk}/qualification/"),
        ("lead only: qualification csv", "get", f"/api/v1/projects/{project.pk}/qualification/?format=csv"),
        (
            "lead only: qualification reset",
            "post",
            f"/api/v1/projects/{project.pk}/annotators/{walker_user.pk}/qualification/reset/",
        ),
    ):
        walker.call(label, method, url, expect=403)
    session_id = walker.call("start", "post", f"/api/v1/projects/{project.pk}/sessions/", expect=201).json()["id"]
    served, answers = [], []
    for step in range(4):
        body = walker.call(f"next {step}", "get", f"/api/v1/sessions/{session_id}/next/", expect=200).json()
        walker.call(f"reload {step}", "get", f"/api/v1/sessions/{session_id}/next/", expect=200)
        served.append(body)
        assignment = Assignment.objects.select_related("item").get(pk=body["assignment_id"])
        gold_side = "left" if (assignment.item.gold == "a") == assignment.left_is_a else "right"
        right = "tie" if assignment.item.gold == "tie" else gold_side
        wrong = "left" if right != "left" else "right"
        url = f"/api/v1/assignments/{body['assignment_id']}/judgment/"
        answers.append(walker.call(f"judge {step}", "post", url, expect=201, choice=right if step % 2 else wrong))
    refused = walker.call("not qualified", "get", f"/api/v1/sessions/{session_id}/next/", expect=403)
    assert refused.json()["code"] == "not_qualified"
    walker.call("annotator page", "get", f"/annotate/{project.pk}/", expect=200, page=True)

    secrets = [*QUAL_MODELS, *(f"qual-secret-{n}" for n in range(6)), "qual-secret-batch", *FORBIDDEN_TEXT]
    problems = []
    for label, response in walker.seen:
        text = response.content.decode("utf-8", errors="replace")
        is_json = response.get("Content-Type", "").startswith("application/json")
        problems += leaks(label, text, dict(response.headers), secrets, is_json=is_json)
    assert problems == []
    # Progress counts answers, whatever they were; a right and a wrong answer are answered alike.
    assert [body["qualification"] for body in served] == [{"answered": n, "size": 4} for n in range(4)]
    own = {"assignment_id", "prompt", "messages", "left", "right", "lease_expires_at", "qualification"}
    shapes = {json.dumps({k: v for k, v in body.items() if k not in own}, sort_keys=True) for body in served}
    assert len(shapes) == 1, shapes
    assert len({tuple(sorted(response.json())) for response in answers}) == 1
    # The refusal says the score and what was needed, no item's.
    assert "score 2 of 4, needed 3" in refused.json()["detail"]


# --- Demonstrations -----------------------------------------------------------------------------------------------
# A writer meets prompts that others have written for and that leads have reviewed (accepted, edited, rejected):
# nothing the writer can reach shows another writer's text, an edit, a review's outcome or reason (their own
# included), another writer's name, or what the prompt is called outside the page.

DEMO_PROMPT_IDS = tuple(f"demo-secret-prompt-{n}" for n in range(4))
DEMO_OTHER_TEXT = "other-writer-text-k7"
DEMO_REVIEW_WORDS = ("reviewer-edit-secret-q1", "rejection-reason-secret-r5", "acceptance-note-secret-s3")
# What a review is made of, in any body or header (a refused lead door may name itself; pages and scripts are walked
# with the names only).
DEMO_OUTCOME_WORDS = (
    "accepted",
    "rejected",
    "edited_text",
    "review_reason",
    "reviewed_by",
    "reviewed_at",
    "final_text",
)


@pytest.fixture
def demo_world(db):
    from annotation.models import Demonstration
    from annotation.services.demonstrations import demonstration_submit

    project = ProjectFactory(
        name="Blind writing", demonstration_min_chars=10, demonstration_max_chars=80, session_max_tasks=100
    )
    batch = BatchFactory(project=project, name="demo-secret-batch", kind=Batch.Kind.DEMONSTRATION, writers_per_item=3)
    Item.objects.bulk_create(
        Item(
            project=project,
            batch=batch,
            external_id=external_id,
            dedupe_key=f"id:{external_id}",
            prompt=f"Write a short answer to question {n}.",
            response_a_text="",
            response_b_text="",
        )
        for n, external_id in enumerate(DEMO_PROMPT_IDS)
    )
    walker_user = UserFactory(username="walker")
    member_add(project=project, username="walker", role="annotator")
    lead = UserFactory(username="demo-secret-reviewer")
    member_add(project=project, username=lead.username, role="lead")
    others = []
    for n in range(2):
        other = UserFactory(username=f"other-writer-{n}")
        member_add(project=project, username=other.username, role="annotator")
        session, _ = session_start(project=project, annotator=other, kind="demonstration")
        for _ in DEMO_PROMPT_IDS:
            assignment = assignment_next(session=session)
            demonstration_submit(
                assignment_id=assignment.pk, annotator_id=other.pk, text=f"{DEMO_OTHER_TEXT} {n} {assignment.item_id}"
            )
        others.append(other)
    written = list(Demonstration.objects.order_by("pk"))
    now = timezone.now()
    reviews = (
        {"status": "accepted", "edited_text": DEMO_REVIEW_WORDS[0]},
        {"status": "rejected", "review_reason": DEMO_REVIEW_WORDS[1]},
        {"status": "accepted", "review_reason": DEMO_REVIEW_WORDS[2]},
    )
    for demonstration, review in zip(written, reviews, strict=False):
        Demonstration.objects.filter(pk=demonstration.pk).update(reviewed_by=lead, reviewed_at=now, **review)
    # Someone else's open demonstration lease, for the "not yours" answers.
    Item.objects.filter(batch=batch).update(judgment_count=0)
    late = UserFactory(username="late-writer")
    member_add(project=project, username=late.username, role="annotator")
    stranger_lease = assignment_next(session=session_start(project=project, annotator=late, kind="demonstration")[0])
    Item.objects.filter(batch=batch).update(judgment_count=2)
    return {
        "project": project,
        "batch": batch,
        "walker": walker_user,
        "others": [*others, lead, late],
        "lease": stranger_lease,
        "other_project": ProjectFactory(name="Not yours"),
    }


def walk_demonstrations(walker: Walker, world) -> list[dict]:
    from annotation.models import Demonstration

    project, batch = world["project"], world["batch"]
    sessions = f"/api/v1/projects/{project.pk}/sessions/"
    walker.call("bad kind", "post", sessions, expect=400, kind="essay")
    session_id = walker.call("start", "post", sessions, expect=201, kind="demonstration").json()["id"]
    walker.call("start again", "post", sessions, expect=200, kind="demonstration")
    walker.call("session", "get", f"/api/v1/sessions/{session_id}/", expect=200)
    other_lease = world["lease"]
    walker.call("someone else's next", "get", f"/api/v1/sessions/{other_lease.session_id}/next/", expect=404)
    for action, body in (("demonstration", {"text": "Mine now, surely."}), ("skip", {}), ("renew", {})):
        url = f"/api/v1/assignments/{other_lease.pk}/{action}/"
        walker.call(f"someone else's {action}", "post", url, expect=404, **body)

    def write(label, assignment_id, expect, text):
        return walker.call(
            label, "post", f"/api/v1/assignments/{assignment_id}/demonstration/", expect=expect, text=text
        )

    served = []
    for step in range(len(DEMO_PROMPT_IDS) + 1):
        shown = walker.call(f"next {step}", "get", f"/api/v1/sessions/{session_id}/next/", expect=(200, 204))
        if shown.status_code == 204:
            break
        body = shown.json()
        served.append(body)
        assignment_id = body["assignment_id"]
        walker.call(f"reload {step}", "get", f"/api/v1/sessions/{session_id}/next/", expect=200)
        if step == 0:
            walker.call("renew", "post", f"/api/v1/assignments/{assignment_id}/renew/", expect=200)
            write("too short", assignment_id, 400, "Short.")
            write("too long", assignment_id, 400, "x" * 81)
            walker.call(
                "a judgment", "post", f"/api/v1/assignments/{assignment_id}/judgment/", expect=409, choice="left"
            )
        if step == 1:
            Assignment.objects.filter(pk=assignment_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
            write("lease expired", assignment_id, 410, "Too late for this one.")
            continue
        if step == 2:
            Batch.objects.filter(pk=batch.pk).update(status="closed")
            write("batch closed", assignment_id, 410, "The batch closed on me.")
            Batch.objects.filter(pk=batch.pk).update(status="open")
            walker.call("report", "post", f"/api/v1/assignments/{assignment_id}/report/", expect=201, kind="broken")
            continue
        write(f"write {step}", assignment_id, 201, f"My own answer {step}.")
        write(f"retry {step}", assignment_id, 200, f"My own answer {step}.")
        write(f"conflict {step}", assignment_id, 409, "Something else entirely.")
        # A lead reviews the walker's own demonstration: a retry still answers only what was sent.
        Demonstration.objects.filter(assignment_id=assignment_id).update(
            status="rejected", review_reason=DEMO_REVIEW_WORDS[1], reviewed_at=timezone.now()
        )
        write(f"retry after review {step}", assignment_id, 200, f"My own answer {step}.")
    else:
        pytest.fail("next never answered 204")
    AnnotationSession.objects.filter(pk=session_id).update(tasks_done=100)
    walker.call("session limit", "get", f"/api/v1/sessions/{session_id}/next/", expect=410)
    AnnotationSession.objects.filter(pk=session_id).update(ended_at=timezone.now())
    walker.call("on break", "post", sessions, expect=429, kind="demonstration")
    return served


def test_demonstration_pages_and_doors_show_no_other_writers_text_nor_any_review(demo_world):
    from annotation.models import Demonstration

    walker = Walker(demo_world["walker"])
    served = walk_demonstrations(walker, demo_world)
    assert len(served) >= 3
    for url, expect in page_urls(demo_world):
        walker.call(f"page {url}", "get", url, expect=expect, page=True)
    statuses = {r.status_code for _l, r in walker.seen}
    assert statuses >= {200, 201, 204, 400, 404, 409, 410, 429}, statuses
    assert {r.json().get("code") for _l, r in walker.seen if r.status_code == 410} == {
        "lease_expired",
        "batch_closed",
        "session_limit",
    }

    others_texts = list(Demonstration.objects.exclude(writer=demo_world["walker"]).values_list("text", flat=True))
    assert len(others_texts) == 8 and all(DEMO_OTHER_TEXT in t for t in others_texts)
    names = [
        *others_texts,
        DEMO_OTHER_TEXT,
        *DEMO_REVIEW_WORDS,
        *DEMO_PROMPT_IDS,
        "demo-secret-batch",
        *(u.username for u in demo_world["others"]),
        *FORBIDDEN_TEXT,
    ]
    problems, pages = [], {}
    for label, response in walker.seen:
        text = response.content.decode("utf-8", errors="replace")
        is_json = response.get("Content-Type", "").startswith("application/json")
        refused_page = label.startswith("page") and response.status_code in (403, 404)
        words = [] if refused_page else list(DEMO_OUTCOME_WORDS)
        problems += leaks(label, text, dict(response.headers), [*names, *words], is_json=is_json)
        if response.get("Content-Type", "").startswith("text/html"):
            pages[label] = text
    for label, html in pages.items():
        for name, source in static_files_of(html).items():
            problems += leaks(f"{label} → /static/{name}", source, {}, names, is_json=False)
    assert problems == []
    assert any("/write/" in label for label in pages), "the walk did not reach the writing page"

    # Every prompt is served alike: the same fields, the same values apart from the prompt's own.
    own = {"assignment_id", "prompt", "messages", "lease_expires_at"}
    shapes = {json.dumps({k: v for k, v in body.items() if k not in own}, sort_keys=True) for body in served}
    assert len(shapes) == 1, shapes
