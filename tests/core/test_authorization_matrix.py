"""The authorization matrix: every API endpoint, page, download and admin door, for every persona, on an object of their
own project and one of another project, each with the answer core.authz's rule gives.

The doors are generated from the URL configuration and the admin registry: a URL or admin that has no entry here
fails test_every_door_has_an_entry, so nothing new ships without saying who may use it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotation.models import Assignment, Batch, Item, ItemReport, JudgmentRevision, Membership, QualificationAttempt
from annotation.services import member_add
from annotation.services.judgments import judgment_submit
from core.admin import NOBODY
from core.authz import Action, Role
from core.models import Job
from tests.core.authz_world import PERSONAS, PROJECTS, build_world, expected, import_file, is_staff, may_anywhere
from tests.factories import ItemFactory, UserFactory
from trainer.models import Status, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(settings, tmp_path):
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    return build_world()


def api_client(world, persona: str) -> Client:
    if persona == "anonymous":
        return Client()
    token, _ = Token.objects.get_or_create(user=world.users[persona])
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


def page_client(world, persona: str) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(world.users[persona])
    return client


def rolled_back(call: Callable):
    """Runs one request in a transaction that is rolled back, so that every persona meets the same world."""
    with transaction.atomic():
        response = call()
        transaction.set_rollback(True)
    return response


# --- API endpoints, pages and downloads ----------------------------------------------------------------------


@dataclass(frozen=True)
class Door:
    method: str
    action: Action | None
    path: Callable  # (ProjectObjects) -> str
    data: Callable | None = None  # (ProjectObjects) -> dict
    page: bool = False  # a page: anonymous users are sent to the login page instead of a 401
    multipart: bool = False


def _json(method: str, action: Action, path: Callable, data: Callable | None = None) -> Door:
    return Door(method, action, path, data)


def _job(objects, kind: str) -> Job:
    """A finished job of the project: readable by those who may do its action there (an import, a snapshot)."""
    action = {"items_import": Action.IMPORT_ITEMS, "dataset_create": Action.MAKE_DATASET}[kind]
    job, _ = Job.objects.get_or_create(
        project=objects.project, kind=kind, defaults={"action": action, "handler": "-", "state": Job.State.SUCCEEDED}
    )
    return job


def _checkpoint(objects):
    """A recorded checkpoint of the project's run (one file, its manifest checked on download)."""
    from trainer.checkpoints import checkpoint_record
    from trainer.services.runs import run_output_dir

    if "checkpoint" not in objects.extra:
        folder = run_output_dir(run=objects.run) / "checkpoints" / "step-1"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text("{}")
        objects.extra["checkpoint"] = checkpoint_record(run_id=objects.run.pk, step=1, folder=folder)
    return objects.extra["checkpoint"]


DOORS: dict[str, Door] = {
    "annotation:member-add": _json(
        "post",
        Action.MANAGE_MEMBERS,
        lambda o: f"/api/v1/projects/{o.project.pk}/members/",
        lambda o: {"username": o.annotator.username, "role": Role.LEAD},
    ),
    "annotation:member-detail": _json(
        "delete", Action.MANAGE_MEMBERS, lambda o: f"/api/v1/projects/{o.project.pk}/members/{o.annotator.username}/"
    ),
    "annotation:item-import": Door(
        "post",
        Action.IMPORT_ITEMS,
        lambda o: f"/api/v1/projects/{o.project.pk}/imports/",
        lambda o: {"batch": "imported", "file": import_file()},
        multipart=True,
    ),
    "annotation:labelled-import": Door(
        "post",
        Action.IMPORT_ITEMS,
        lambda o: f"/api/v1/projects/{o.project.pk}/labelled/",
        lambda o: {"source": "labelled", "format": "items", "file": import_file()},
        multipart=True,
    ),
    "annotation:batch-close": _json(
        "post", Action.MANAGE_BATCHES, lambda o: f"/api/v1/batches/{o.open_batch.pk}/close/"
    ),
    "annotation:session-start": _json("post", Action.ANNOTATE, lambda o: f"/api/v1/projects/{o.project.pk}/sessions/"),
    "annotation:qualification-list": _json(
        "get", Action.VIEW_AGREEMENT, lambda o: f"/api/v1/projects/{o.project.pk}/qualification/"
    ),
    "annotation:qualification-list csv": _json(
        "get", Action.VIEW_AGREEMENT, lambda o: f"/api/v1/projects/{o.project.pk}/qualification/?format=csv"
    ),
    "annotation:qualification-reset": _json(
        "post",
        Action.MANAGE_MEMBERS,
        lambda o: f"/api/v1/projects/{o.project.pk}/annotators/{o.annotator.pk}/qualification/reset/",
    ),
    "rewards:project-agreement": _json(
        "get", Action.VIEW_AGREEMENT, lambda o: f"/api/v1/projects/{o.project.pk}/agreement/"
    ),
    "rewards:project-agreement-annotators": _json(
        "get", Action.VIEW_AGREEMENT, lambda o: f"/api/v1/projects/{o.project.pk}/agreement/annotators/"
    ),
    "rewards:split-items": _json(
        "get", Action.VIEW_AGREEMENT, lambda o: f"/api/v1/projects/{o.project.pk}/split-items/"
    ),
    "rewards:annotator-judgments": _json(
        "get",
        Action.VIEW_JUDGMENTS,
        lambda o: f"/api/v1/projects/{o.project.pk}/annotators/{o.judgment.annotator_id}/judgments/",
    ),
    "rewards:annotator-judgments csv": _json(
        "get",
        Action.VIEW_JUDGMENTS,
        lambda o: f"/api/v1/projects/{o.project.pk}/annotators/{o.judgment.annotator_id}/judgments/?format=csv",
    ),
    "rewards:project-datasets": _json(
        "get", Action.VIEW_DATASETS, lambda o: f"/api/v1/projects/{o.project.pk}/datasets/"
    ),
    "rewards:project-datasets POST": _json(
        "post", Action.MAKE_DATASET, lambda o: f"/api/v1/projects/{o.project.pk}/datasets/", lambda o: {}
    ),
    # Issue 15: the same door with labelled sources, and for an SFT snapshot of demonstrations.
    "rewards:project-datasets POST sources": _json(
        "post",
        Action.MAKE_DATASET,
        lambda o: f"/api/v1/projects/{o.project.pk}/datasets/",
        lambda o: {"sources": ["no-such-source"]},
    ),
    "rewards:project-datasets POST sft": _json(
        "post", Action.MAKE_DATASET, lambda o: f"/api/v1/projects/{o.project.pk}/datasets/", lambda o: {"kind": "sft"}
    ),
    "rewards:dataset-detail": _json("get", Action.VIEW_DATASETS, lambda o: f"/api/v1/datasets/{o.snapshot.pk}/"),
    "rewards:dataset-file": _json(
        "get", Action.VIEW_DATASETS, lambda o: f"/api/v1/datasets/{o.snapshot.pk}/files/manifest/"
    ),
    "core:job-detail": _json("get", Action.IMPORT_ITEMS, lambda o: f"/api/v1/jobs/{_job(o, 'items_import').pk}/"),
    "core:job-detail dataset": _json(
        "get", Action.MAKE_DATASET, lambda o: f"/api/v1/jobs/{_job(o, 'dataset_create').pk}/"
    ),
    "trainer:run-detail": _json("get", Action.VIEW_RUNS, lambda o: f"/api/v1/runs/{o.run.pk}/"),
    "trainer:run-metrics": _json("get", Action.VIEW_RUNS, lambda o: f"/api/v1/runs/{o.run.pk}/metrics/"),
    "trainer:run-cancel": _json("post", Action.START_RUNS, lambda o: f"/api/v1/runs/{o.queued_run.pk}/cancel/"),
    "trainer:run-checkpoints": _json("get", Action.VIEW_RUNS, lambda o: f"/api/v1/runs/{o.run.pk}/checkpoints/"),
    "trainer:project-base-models": _json(
        "get", Action.START_RUNS, lambda o: f"/api/v1/projects/{o.project.pk}/base-models/"
    ),
    # Weights are for the ML engineers (START_RUNS), not the leads who see the runs (trainer.selectors).
    "trainer:checkpoint-download": _json(
        "get", Action.START_RUNS, lambda o: f"/api/v1/checkpoints/{_checkpoint(o).pk}/download/"
    ),
    "frontend:annotate": Door("get", Action.ANNOTATE, lambda o: f"/annotate/{o.project.pk}/", page=True),
    # The writing page (a demonstration session), and starting such a session.
    "frontend:write": Door("get", Action.ANNOTATE, lambda o: f"/annotate/{o.project.pk}/write/", page=True),
    "annotation:session-start demonstration": _json(
        "post",
        Action.ANNOTATE,
        lambda o: f"/api/v1/projects/{o.project.pk}/sessions/",
        lambda o: {"kind": "demonstration"},
    ),
    "frontend:run": Door("get", Action.VIEW_RUNS, lambda o: f"/runs/{o.run.pk}/", page=True),
    "frontend:lead-project": Door("get", Action.VIEW_AGREEMENT, lambda o: f"/lead/projects/{o.project.pk}/", page=True),
    "frontend:lead-annotator": Door(
        "get",
        Action.VIEW_AGREEMENT,
        lambda o: f"/lead/projects/{o.project.pk}/annotators/{o.annotator.pk}/",
        page=True,
    ),
    "frontend:lead-annotator-judgments": Door(
        "get",
        Action.VIEW_JUDGMENTS,
        lambda o: f"/lead/projects/{o.project.pk}/annotators/{o.judgment.annotator_id}/judgments/",
        page=True,
    ),
    "frontend:lead-split-items": Door(
        "get", Action.VIEW_AGREEMENT, lambda o: f"/lead/projects/{o.project.pk}/split-items/", page=True
    ),
}


# Evaluation sets and generation runs (evaluation/apis.py): leads and ML engineers read and import sets, ML engineers
# start generation runs; annotators reach none of it.
def _eval_set(objects):
    from evaluation.services.eval_sets import eval_set_import

    if "eval_set" not in objects.extra:
        body = b'{"id": "q1", "prompt": "Hello?", "stratum": "red_team"}\n'
        objects.extra["eval_set"] = eval_set_import(project=objects.project, name="golden", file=body)
    return objects.extra["eval_set"]


def _sampled(objects):
    from evaluation.models import Sampled
    from trainer.models import Kind

    if "sampled" not in objects.extra:
        run = TrainingRun.objects.create(
            project=objects.project,
            kind=Kind.GENERATE,
            status=Status.SUCCEEDED,
            config={"model": "tiny"},
            time_limit_seconds=60,
        )
        objects.extra["sampled"] = Sampled.objects.create(
            run=run, eval_set=_eval_set(objects), model_key="base:tiny", label="base tiny"
        )
    return objects.extra["sampled"]


def _eval_set_file():
    import io

    upload = io.BytesIO(b'{"id": "q1", "prompt": "Hello?"}\n')
    upload.name = "set.jsonl"
    return upload


DOORS.update(
    {
        "evaluation:project-eval-sets": _json(
            "get", Action.VIEW_EVALUATION, lambda o: f"/api/v1/projects/{o.project.pk}/eval-sets/"
        ),
        "evaluation:project-eval-sets POST": Door(
            "post",
            Action.MANAGE_EVALUATION,
            lambda o: f"/api/v1/projects/{o.project.pk}/eval-sets/",
            lambda o: {"name": "imported", "file": _eval_set_file()},
            multipart=True,
        ),
        "evaluation:eval-set-detail": _json(
            "get", Action.VIEW_EVALUATION, lambda o: f"/api/v1/eval-sets/{_eval_set(o).pk}/"
        ),
        "evaluation:eval-set-detail csv": _json(
            "get", Action.VIEW_EVALUATION, lambda o: f"/api/v1/eval-sets/{_eval_set(o).pk}/?format=csv"
        ),
        "evaluation:eval-set-generations": _json(
            "get", Action.VIEW_EVALUATION, lambda o: f"/api/v1/eval-sets/{_eval_set(o).pk}/generations/"
        ),
        "evaluation:eval-set-generations POST": _json(
            "post",
            Action.START_RUNS,
            lambda o: f"/api/v1/eval-sets/{_eval_set(o).pk}/generations/",
            lambda o: {"model": "checkpoint:999999999"},
        ),
        "evaluation:project-generation-runs": _json(
            "get", Action.VIEW_EVALUATION, lambda o: f"/api/v1/projects/{o.project.pk}/generation-runs/"
        ),
    }
)


# Results (evaluation/apis_results.py) and the Checkpoints and generations pages: leads and ML engineers.
def _evaluation_batch(objects):
    from annotation.services.projects import project_current_criteria
    from evaluation.models import EvaluationBatch, Sampled

    if "evaluation_batch" not in objects.extra:
        baseline = _sampled(objects)
        run = TrainingRun.objects.create(
            project=objects.project, kind="generate", status=Status.SUCCEEDED, config={}, time_limit_seconds=60
        )
        candidate = Sampled.objects.create(run=run, eval_set=baseline.eval_set, model_key="base:other", label="other")
        batch = Batch.objects.create(
            project=objects.project,
            name="evaluation",
            kind="evaluation",
            criteria_version=project_current_criteria(project=objects.project),
        )
        objects.extra["evaluation_batch"] = EvaluationBatch.objects.create(
            batch=batch, eval_set=baseline.eval_set, candidate=candidate, baseline=baseline
        )
    return objects.extra["evaluation_batch"]


DOORS.update(
    {
        "evaluation:evaluation-batch-results": _json(
            "get", Action.VIEW_EVALUATION, lambda o: f"/api/v1/evaluation-batches/{_evaluation_batch(o).pk}/results/"
        ),
        "evaluation:evaluation-batch-results csv": _json(
            "get",
            Action.VIEW_EVALUATION,
            lambda o: f"/api/v1/evaluation-batches/{_evaluation_batch(o).pk}/results/?format=csv",
        ),
        "evaluation:project-leaderboard": _json(
            "get", Action.VIEW_EVALUATION, lambda o: f"/api/v1/projects/{o.project.pk}/leaderboard/"
        ),
        "evaluation:project-leaderboard csv": _json(
            "get", Action.VIEW_EVALUATION, lambda o: f"/api/v1/projects/{o.project.pk}/leaderboard/?format=csv"
        ),
        "frontend:checkpoints": Door(
            "get", Action.VIEW_EVALUATION, lambda o: f"/projects/{o.project.pk}/checkpoints/", page=True
        ),
        "frontend:generations": Door(
            "get",
            Action.VIEW_EVALUATION,
            lambda o: (
                f"/projects/{o.project.pk}/generations/?a={_evaluation_batch(o).candidate.run_id}"
                f"&b={_evaluation_batch(o).baseline.run_id}"
            ),
            page=True,
        ),
    }
)

# Evaluation batches (evaluation/apis_batches.py): leads and ML engineers list and make them. An empty body is a 400
# for those who may (their role is checked first), a refusal for the others.
DOORS.update(
    {
        "evaluation:project-evaluation-batches": _json(
            "get", Action.VIEW_EVALUATION, lambda o: f"/api/v1/projects/{o.project.pk}/evaluation-batches/"
        ),
        "evaluation:project-evaluation-batches POST": _json(
            "post",
            Action.MANAGE_EVALUATION,
            lambda o: f"/api/v1/projects/{o.project.pk}/evaluation-batches/",
            lambda o: {},
        ),
    }
)


# The deployment gate (evaluation/apis_gate.py, frontend/views_gate.py): everyone who sees releases reads; leads and
# reviewers write policies; reviewers decide and release (the service's rule: 403 not_allowed for the others).
def _gate_policy(objects):
    from evaluation.models import GatePolicy

    if "gate_policy" not in objects.extra:
        objects.extra["gate_policy"] = GatePolicy.objects.create(project=objects.project, version=1, min_judgments=1)
    return objects.extra["gate_policy"]


def _decision(objects, key: str = "decision"):
    """An approving decision on the project's evaluation batch (its reviewer a plain annotator row: any user)."""
    from evaluation.models import GateDecision

    if key not in objects.extra:
        objects.extra[key] = GateDecision.objects.create(
            project=objects.project,
            evaluation_batch=_evaluation_batch(objects),
            checkpoint=_checkpoint(objects),
            policy=_gate_policy(objects),
            verdict="approve",
            note="ok",
            reviewer=objects.annotator,
        )
    return objects.extra[key]


def _release_row(objects):
    from evaluation.models import Release

    if "release" not in objects.extra:
        decision = _decision(objects, "released_decision")
        objects.extra["release"] = Release.objects.create(
            project=objects.project, checkpoint=decision.checkpoint, decision=decision, released_by=objects.annotator
        )
    return objects.extra["release"]


def _audit_event(objects):
    from evaluation.models import AuditEvent

    if "audit_event" not in objects.extra:
        objects.extra["audit_event"] = AuditEvent.objects.create(project=objects.project, kind="policy_created")
    return objects.extra["audit_event"]


DOORS.update(
    {
        "evaluation:project-gate-policies": _json(
            "get", Action.VIEW_RELEASES, lambda o: f"/api/v1/projects/{o.project.pk}/gate-policies/"
        ),
        "evaluation:project-gate-policies POST": _json(
            "post",
            Action.MANAGE_GATE,
            lambda o: f"/api/v1/projects/{o.project.pk}/gate-policies/",
            lambda o: {"min_judgments": 10},
        ),
        "evaluation:evaluation-batch-gate": _json(
            "get", Action.VIEW_RELEASES, lambda o: f"/api/v1/evaluation-batches/{_evaluation_batch(o).pk}/gate/"
        ),
        "evaluation:evaluation-batch-decisions": _json(
            "post",
            Action.DECIDE_GATE,
            lambda o: f"/api/v1/evaluation-batches/{_evaluation_batch(o).pk}/decisions/",
            lambda o: {"verdict": "reject", "note": "Not yet."},
        ),
        "evaluation:decision-release": _json(
            "post", Action.DECIDE_GATE, lambda o: f"/api/v1/decisions/{_decision(o).pk}/release/", lambda o: {}
        ),
        "evaluation:project-releases": _json(
            "get", Action.VIEW_RELEASES, lambda o: f"/api/v1/projects/{o.project.pk}/releases/"
        ),
        "evaluation:project-audit": _json(
            "get", Action.VIEW_RELEASES, lambda o: f"/api/v1/projects/{o.project.pk}/audit/"
        ),
        "evaluation:project-audit csv": _json(
            "get", Action.VIEW_RELEASES, lambda o: f"/api/v1/projects/{o.project.pk}/audit/?format=csv"
        ),
        "frontend:gate": Door(
            "get",
            Action.VIEW_RELEASES,
            lambda o: f"/projects/{o.project.pk}/gate/{_evaluation_batch(o).pk}/",
            page=True,
        ),
        "frontend:gate POST": Door(
            "post",
            Action.DECIDE_GATE,
            lambda o: f"/projects/{o.project.pk}/gate/{_evaluation_batch(o).pk}/",
            lambda o: {"verdict": "reject", "note": "Not yet."},
            page=True,
            multipart=True,
        ),
        "frontend:releases": Door(
            "get", Action.VIEW_RELEASES, lambda o: f"/projects/{o.project.pk}/releases/", page=True
        ),
    }
)

# The hand-off package download (evaluation/apis_handoff.py): whoever sees releases. The release's package is not
# built here, so those who may get 409 package_not_built (tests/evaluation/test_handoff.py downloads a real one).
DOORS.update(
    {
        "evaluation:release-package": _json(
            "get", Action.VIEW_RELEASES, lambda o: f"/api/v1/releases/{_release_row(o).pk}/package/"
        ),
    }
)


# Demonstrations (issue 15): the lead's review (API, page, admin) and a batch's raw judgments (API, Batch action).
def _demonstration(objects):
    """A pending demonstration written by the project's plain annotator (made once, kept for every persona)."""
    from annotation.models import Demonstration
    from annotation.services.projects import project_current_criteria

    if "demonstration" not in objects.extra:
        batch = Batch.objects.create(
            project=objects.project,
            name="demonstrations",
            kind=Batch.Kind.DEMONSTRATION,
            criteria_version=project_current_criteria(project=objects.project),
        )
        item = ItemFactory(
            batch=batch, response_a_text="", response_b_text="", response_a_model="", response_b_model=""
        )
        objects.extra["demonstration"] = Demonstration.objects.create(
            item=item, batch=batch, writer=objects.annotator, text="A written answer.", seconds=30
        )
    return objects.extra["demonstration"]


DOORS.update(
    {
        "annotation:demonstration-queue": _json(
            "get", Action.REVIEW_DEMONSTRATIONS, lambda o: f"/api/v1/projects/{o.project.pk}/demonstrations/"
        ),
        "annotation:demonstration-writers": _json(
            "get", Action.REVIEW_DEMONSTRATIONS, lambda o: f"/api/v1/projects/{o.project.pk}/demonstrations/writers/"
        ),
        "annotation:demonstration-review": _json(
            "post",
            Action.REVIEW_DEMONSTRATIONS,
            lambda o: f"/api/v1/demonstrations/{_demonstration(o).pk}/review/",
            lambda o: {"decision": "reject", "reason": "Not what was asked."},
        ),
        "frontend:lead-demonstrations": Door(
            "get", Action.REVIEW_DEMONSTRATIONS, lambda o: f"/lead/projects/{o.project.pk}/demonstrations/", page=True
        ),
        "frontend:lead-demonstrations POST": Door(
            "post",
            Action.REVIEW_DEMONSTRATIONS,
            lambda o: f"/lead/projects/{o.project.pk}/demonstrations/",
            lambda o: {"demonstration": _demonstration(o).pk, "decision": "reject", "reason": "Not what was asked."},
            page=True,
            multipart=True,
        ),
        "rewards:batch-judgments": _json(
            "get", Action.MAKE_DATASET, lambda o: f"/api/v1/batches/{o.closed_batch.pk}/judgments/"
        ),
        "rewards:batch-judgments csv": _json(
            "get", Action.MAKE_DATASET, lambda o: f"/api/v1/batches/{o.closed_batch.pk}/judgments/?format=csv"
        ),
    }
)

# Doors with a rule of their own, each tested below.
LISTINGS = {"annotation:project-list", "trainer:run-list", "frontend:home", "frontend:runs"}
OWNER_ONLY = {
    "annotation:session-next",
    "annotation:session-detail",
    "annotation:judgment-submit",
    "annotation:assignment-skip",
    "annotation:item-report",
    "annotation:assignment-renew",
    "annotation:judgment-revise",
    "annotation:demonstration-submit",  # test_a_demonstration_is_taken_only_from_its_writer
}
OTHER = {
    "trainer:run-list POST": "test_starting_a_run_names_a_snapshot_the_user_may_train_on",
    "frontend:lead-home": "test_the_lead_home_needs_a_lead_role_somewhere",
    "schema": "test_api_docs_and_schema_need_a_login",
    "api-docs": "test_api_docs_and_schema_need_a_login",
    "api-redoc": "test_api_docs_and_schema_need_a_login",
}
# A redirect to a static file.
PUBLIC_ROUTES = {"route favicon.ico"}
# Django's own login, logout and password views: open to everyone by design.
PUBLIC = {
    "login",
    "logout",
    "password_change",
    "password_change_done",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
}


def _url_names(patterns, namespace: str = "") -> set[str]:
    names = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name == "admin":
                continue
            inner = f"{namespace}:{pattern.namespace}" if namespace and pattern.namespace else pattern.namespace
            names |= _url_names(pattern.url_patterns, inner or namespace)
        elif isinstance(pattern, URLPattern):
            name = pattern.name or f"route {pattern.pattern}"  # an unnamed URL is known by its route
            names.add(f"{namespace}:{name}" if namespace else name)
    return names


def _admin_url_names() -> set[str]:
    names = set()
    for model_admin in admin.site._registry.values():
        names |= {p.name for p in model_admin.urls if isinstance(p, URLPattern) and p.name}
    return names


def test_every_door_has_an_entry():
    covered = {name.split(" ")[0] for name in DOORS} | LISTINGS | OWNER_ONLY | PUBLIC | PUBLIC_ROUTES
    covered |= {name.split(" ")[0] for name in OTHER}
    missing = _url_names(get_resolver().url_patterns) - covered
    assert not missing, f"URLs without an entry in the authorization matrix: {sorted(missing)}"
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert registered - set(ADMINS) - SUPERUSER_ONLY_ADMINS == set(), "admins without an entry"
    standard = {"changelist", "add", "change", "delete", "history"}
    custom = {
        name
        for name in _admin_url_names()
        if not any(name.endswith(f"_{suffix}") for suffix in standard) and name != "autocomplete"
    }
    assert custom - set(CUSTOM_ADMIN_DOORS) == set(), "admin URLs without an entry"
    for label, entry in ADMINS.items():
        model_admin = next(a for m, a in admin.site._registry.items() if m._meta.label_lower == label)
        for name, (func, _, _) in model_admin.get_actions(_superuser_request()).items():
            assert name in entry.actions or name == "delete_selected", f"{label}: action {name} has no entry"
            if name != "delete_selected":
                assert getattr(func, "authz_action", None) == entry.actions[name], f"{label}.{name}"


def _superuser_request():
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = get_user_model()(is_superuser=True, is_staff=True, is_active=True)
    return request


def _answer(response, *, page: bool) -> str:
    if response.status_code in (401,) or (page and response.status_code == 302 and "/login/" in response["Location"]):
        return "login"
    if response.status_code == 404:
        return "not_found"
    if response.status_code == 403:
        return "forbidden"
    assert response.status_code < 500
    return "allowed"


@pytest.mark.parametrize("name", sorted(DOORS))
def test_door(world, name):
    door = DOORS[name]
    seen = {}
    for persona in PERSONAS:
        client = page_client(world, persona) if door.page else api_client(world, persona)
        for key in PROJECTS:
            objects = world.projects[key]
            kwargs = {}
            if door.data is not None:
                kwargs["data"] = door.data(objects)
                if not door.multipart:
                    kwargs["content_type"] = "application/json"
            path = door.path(objects)
            response = rolled_back(
                lambda client=client, path=path, kwargs=kwargs: getattr(client, door.method)(path, **kwargs)
            )
            seen[persona, key] = (_answer(response, page=door.page), response.status_code)
    wrong = {
        f"{persona} on {key}": f"got {got} ({status}), want {expected(persona, key, door.action)}"
        for (persona, key), (got, status) in seen.items()
        if got != expected(persona, key, door.action)
    }
    assert not wrong, wrong


def test_listings_show_only_what_the_role_may_see(world):
    for persona in PERSONAS:
        if persona == "anonymous":
            assert api_client(world, persona).get("/api/v1/projects/").status_code == 401
            assert api_client(world, persona).get("/api/v1/runs/").status_code == 401
            assert page_client(world, persona).get("/runs/").status_code == 302
            continue
        api, page = api_client(world, persona), page_client(world, persona)
        projects = {p["id"] for p in api.get("/api/v1/projects/").json()}
        runs = {r["id"] for r in api.get("/api/v1/runs/").json()}
        home = page.get("/").content.decode()
        runs_page = page.get("/runs/").content.decode()
        for key in PROJECTS:
            objects = world.projects[key]
            member = persona == "superuser" or key in PERSONAS[persona]
            assert (objects.project.pk in projects) == member, (persona, key)
            assert (objects.project.name in home) == member, (persona, key)
            sees_runs = expected(persona, key, Action.VIEW_RUNS) == "allowed"
            assert (objects.run.pk in runs) == sees_runs, (persona, key)
            assert (f"/runs/{objects.run.pk}/" in runs_page) == sees_runs, (persona, key)


def _owners_judgment(objects) -> int:
    """A judgment of the loop's owner on an open item of their project, for the revision door."""
    session, owner, now = objects.extra["loop_session"], objects.extra["loop_owner"], timezone.now()
    lease = Assignment.objects.create(
        session=session,
        item=ItemFactory(batch=objects.open_batch),
        annotator=owner,
        left_is_a=True,
        leased_at=now,
        lease_expires_at=now + timedelta(minutes=10),
    )
    return judgment_submit(assignment_id=lease.pk, annotator_id=owner.pk, choice="left")[0].pk


def test_the_annotator_loop_answers_only_the_session_owner(world):
    for key in PROJECTS:
        objects = world.projects[key]
        session, lease, owner = objects.extra["loop_session"], objects.extra["lease"], objects.extra["loop_owner"]
        judgment, judgment_id = {"choice": "left"}, _owners_judgment(objects)
        for persona in PERSONAS:
            client = api_client(world, persona)

            def post(path, body=None, client=client):
                return client.post(path, body or {}, content_type="application/json")

            calls = [
                lambda client=client, s=session: client.get(f"/api/v1/sessions/{s.pk}/"),
                lambda client=client, s=session: client.get(f"/api/v1/sessions/{s.pk}/next/"),
                lambda post=post, lease=lease, judgment=judgment: post(
                    f"/api/v1/assignments/{lease.pk}/judgment/", judgment
                ),
                lambda post=post, lease=lease: post(f"/api/v1/assignments/{lease.pk}/skip/", {"reason": "unsure"}),
                lambda post=post, lease=lease: post(f"/api/v1/assignments/{lease.pk}/report/", {"kind": "broken"}),
                lambda post=post, lease=lease: post(f"/api/v1/assignments/{lease.pk}/renew/"),
                lambda post=post, pk=judgment_id: post(f"/api/v1/judgments/{pk}/revision/", {"choice": "right"}),
            ]
            answers = [rolled_back(call).status_code for call in calls]
            if persona == "anonymous":
                assert answers == [401] * len(calls), (persona, key, answers)
            elif world.users[persona] == owner:
                assert all(code < 400 for code in answers), (persona, key, answers)
            else:
                assert answers == [404] * len(calls), (persona, key, answers)


def test_starting_a_run_names_a_snapshot_the_user_may_train_on(world):
    """A snapshot is named in the body: one of a project the user has no role in reads like a missing one."""
    missing = api_client(world, "superuser").post(
        "/api/v1/runs/", {"kind": "dpo", "snapshot": 10**12, "config": {}}, content_type="application/json"
    )
    assert missing.status_code == 400
    for persona in PERSONAS:
        client = api_client(world, persona)
        for key in PROJECTS:
            snapshot = world.projects[key].snapshot
            body = {"kind": "dpo", "snapshot": snapshot.pk, "config": {"base_model": "tiny"}}
            response = rolled_back(
                lambda client=client, body=body: client.post("/api/v1/runs/", body, content_type="application/json")
            )
            want = expected(persona, key, Action.START_RUNS)
            if want == "login":
                assert response.status_code == 401
            elif want == "not_found":
                assert response.status_code == 400, (persona, key)
                assert response.json()["snapshot"] == [f"No dataset snapshot {snapshot.pk}."]
            elif want == "forbidden":
                assert response.status_code == 403, (persona, key)
            else:
                assert response.status_code not in (401, 403, 404), (persona, key)
                assert "snapshot" not in response.json().get("errors", {}), (persona, key, response.json())


def test_the_lead_home_needs_a_lead_role_somewhere(world):
    for persona in PERSONAS:
        response = page_client(world, persona).get("/lead/")
        if persona == "anonymous":
            assert response.status_code == 302
        else:
            assert (response.status_code == 200) == may_anywhere(persona, Action.VIEW_AGREEMENT), persona


def test_api_docs_and_schema_need_a_login(world):
    paths = [reverse("schema"), reverse("api-docs")]
    for path in paths:
        assert Client().get(path).status_code in (302, 401, 403), path
        assert page_client(world, "annotator").get(path).status_code == 200, path


# --- The admin ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminEntry:
    obj: Callable  # (ProjectObjects) -> the model instance to try
    view: Action | None
    add: Action | None = None
    change: Action | None = None
    delete: Action | None = None
    actions: dict | None = None

    def __post_init__(self):
        if self.actions is None:
            object.__setattr__(self, "actions", {})


ADMINS: dict[str, AdminEntry] = {
    "annotation.project": AdminEntry(lambda o: o.project, Action.VIEW_PROJECT, change=Action.CHANGE_PROJECT),
    "annotation.criteriaversion": AdminEntry(
        lambda o: o.spare_criteria, Action.VIEW_PROJECT, add=Action.CHANGE_PROJECT, delete=Action.CHANGE_PROJECT
    ),
    "annotation.batch": AdminEntry(
        lambda o: o.open_batch,
        Action.VIEW_PROJECT,
        add=Action.MANAGE_BATCHES,
        change=Action.MANAGE_BATCHES,
        actions={"close_batches": Action.MANAGE_BATCHES, "make_dataset_snapshot": Action.MAKE_DATASET},
    ),
    "annotation.item": AdminEntry(lambda o: o.item, Action.VIEW_ITEMS),
    "annotation.membership": AdminEntry(
        lambda o: Membership.objects.get(project=o.project, user=o.annotator),
        Action.MANAGE_MEMBERS,
        add=Action.MANAGE_MEMBERS,
        change=Action.MANAGE_MEMBERS,
        delete=Action.MANAGE_MEMBERS,
    ),
    "annotation.importrecord": AdminEntry(lambda o: o.import_record, Action.IMPORT_ITEMS, add=NOBODY, change=NOBODY),
    "annotation.annotationsession": AdminEntry(lambda o: o.session, Action.VIEW_JUDGMENTS, add=NOBODY, change=NOBODY),
    "annotation.assignment": AdminEntry(
        lambda o: o.judgment.assignment, Action.VIEW_JUDGMENTS, add=NOBODY, change=NOBODY
    ),
    "annotation.judgment": AdminEntry(lambda o: o.judgment, Action.VIEW_JUDGMENTS, add=NOBODY, change=NOBODY),
    "annotation.itemreport": AdminEntry(
        lambda o: _report(o),
        Action.VIEW_ITEMS,
        add=NOBODY,
        change=NOBODY,
        actions={"withdraw_items": Action.MANAGE_BATCHES},
    ),
    "annotation.judgmentrevision": AdminEntry(lambda o: _revision(o), Action.VIEW_JUDGMENTS, add=NOBODY, change=NOBODY),
    "annotation.qualificationattempt": AdminEntry(
        lambda o: _attempt(o),
        Action.VIEW_AGREEMENT,
        add=NOBODY,
        change=NOBODY,
        actions={"reset_attempts": Action.MANAGE_MEMBERS},
    ),
    "rewards.agreementsnapshot": AdminEntry(lambda o: o.agreement, Action.VIEW_AGREEMENT, add=NOBODY, change=NOBODY),
    "rewards.projectflagrules": AdminEntry(
        lambda o: o.flag_rules, Action.VIEW_AGREEMENT, add=Action.CHANGE_PROJECT, change=Action.CHANGE_PROJECT
    ),
    "rewards.datasetsnapshot": AdminEntry(
        lambda o: o.snapshot, Action.VIEW_DATASETS, add=NOBODY, change=NOBODY, delete=NOBODY
    ),
    "trainer.trainingrun": AdminEntry(
        lambda o: o.queued_run,
        Action.VIEW_RUNS,
        add=NOBODY,
        change=NOBODY,
        delete=NOBODY,
        actions={"cancel_runs": Action.START_RUNS},
    ),
}


def _report(objects) -> ItemReport:
    """A report on the project's judged item (made once, kept for every persona)."""
    assignment = objects.judgment.assignment
    report, _ = ItemReport.objects.get_or_create(
        assignment=assignment, defaults={"item_id": assignment.item_id, "annotator_id": assignment.annotator_id}
    )
    return report


def _attempt(objects) -> QualificationAttempt:
    """A failed qualification attempt of the project's annotator (made once, kept for every persona)."""
    now = timezone.now()
    attempt, _ = QualificationAttempt.objects.get_or_create(
        project=objects.project,
        annotator=objects.annotator,
        defaults={"started_at": now, "finished_at": now, "size": 4, "threshold": 0.75, "answered": 4, "passed": False},
    )
    return attempt


def _revision(objects) -> JudgmentRevision:
    judgment = objects.judgment
    revision, _ = JudgmentRevision.objects.get_or_create(
        judgment=judgment, defaults={"old_choice": judgment.choice, "new_choice": judgment.choice}
    )
    return revision


ADMINS.update(
    {
        "evaluation.evalset": AdminEntry(
            lambda o: _eval_set(o),
            Action.VIEW_EVALUATION,
            add=Action.MANAGE_EVALUATION,
            change=NOBODY,
            delete=NOBODY,
            actions={"generate_responses": Action.START_RUNS},
        ),
        "evaluation.sampled": AdminEntry(
            lambda o: _sampled(o),
            Action.VIEW_EVALUATION,
            add=NOBODY,
            change=NOBODY,
            delete=NOBODY,
            actions={"make_evaluation_batch": Action.MANAGE_EVALUATION},
        ),
    }
)


ADMINS.update(
    {
        "evaluation.gatepolicy": AdminEntry(
            lambda o: _gate_policy(o), Action.VIEW_RELEASES, add=Action.MANAGE_GATE, change=NOBODY, delete=NOBODY
        ),
        "evaluation.gatedecision": AdminEntry(
            lambda o: _decision(o),
            Action.VIEW_RELEASES,
            add=NOBODY,
            change=NOBODY,
            delete=NOBODY,
            actions={"release_checkpoint": Action.DECIDE_GATE},
        ),
        "evaluation.release": AdminEntry(
            lambda o: _release_row(o), Action.VIEW_RELEASES, add=NOBODY, change=NOBODY, delete=NOBODY
        ),
        "evaluation.auditevent": AdminEntry(
            lambda o: _audit_event(o), Action.VIEW_RELEASES, add=NOBODY, change=NOBODY, delete=NOBODY
        ),
    }
)


# Demonstrations (issue 15): the review admin and the Batch action for raw judgments.
ADMINS.update(
    {
        "annotation.demonstration": AdminEntry(
            lambda o: _demonstration(o),
            Action.REVIEW_DEMONSTRATIONS,
            add=NOBODY,
            change=NOBODY,
            actions={
                "accept_demonstrations": Action.REVIEW_DEMONSTRATIONS,
                "reject_demonstrations": Action.REVIEW_DEMONSTRATIONS,
            },
        ),
    }
)
ADMINS["annotation.batch"].actions["download_raw_judgments"] = Action.MAKE_DATASET


# Admins of what belongs to no project: Django's model permissions, which no role group holds.
SUPERUSER_ONLY_ADMINS = {
    "auth.user",
    "auth.group",
    "authtoken.tokenproxy",
    "axes.accessattempt",
    "axes.accessfailurelog",
    "axes.accesslog",
    "core.outboxmessage",
    "trainer.projectrunlimits",
    "trainer.workercapability",  # the worker registry (docs/SCALING.md), written by the workers
}
CUSTOM_ADMIN_DOORS = {
    "annotation_project_import": "test_admin_custom_doors",
    "annotation_project_import_labelled": "test_admin_custom_doors",
    "rewards_datasetsnapshot_file": "test_admin_custom_doors",
    "rewards_datasetsnapshot_job": "test_admin_custom_doors",
    "trainer_trainingrun_start": "test_admin_custom_doors",
    "trainer_trainingrun_cancel": "test_admin_custom_doors",
}


def _admin_answer(response) -> str:
    if response.status_code == 302 and "/admin/login/" in response["Location"]:
        return "login"
    if response.status_code == 302:
        return "not_found"  # Django's admin: "… with ID … doesn't exist", the same as for a missing object
    if response.status_code == 403:
        return "forbidden"
    assert response.status_code == 200, response.status_code
    return "allowed"


def _want(persona: str, key: str, action: Action | None, *, visible: Action | None) -> str:
    """What an object door answers: non-staff go to the login page; an object the user cannot see is missing."""
    if not is_staff(persona):
        return "login"
    want = expected(persona, key, action)
    if want == "allowed":
        return "allowed"
    seen = expected(persona, key, visible) == "allowed"
    return "forbidden" if seen else "not_found"


def _anywhere(persona: str, action: Action | None) -> str:
    if not is_staff(persona):
        return "login"
    return "allowed" if may_anywhere(persona, action) else "forbidden"


@pytest.mark.parametrize("label", sorted(ADMINS))
def test_admin(world, label):
    entry = ADMINS[label]
    app, model = label.split(".")
    base = f"/admin/{app}/{model}/"
    wrong = []
    for persona in PERSONAS:
        client = page_client(world, persona)
        visible_somewhere = may_anywhere(persona, entry.view) or may_anywhere(persona, entry.change)
        changelist = client.get(base)
        want = "login" if not is_staff(persona) else ("allowed" if visible_somewhere else "forbidden")
        if _admin_answer(changelist) != want:
            wrong.append(f"{persona} changelist: {changelist.status_code}, want {want}")
        add = client.get(f"{base}add/")
        if _admin_answer(add) != _anywhere(persona, entry.add):
            wrong.append(f"{persona} add: {add.status_code}, want {_anywhere(persona, entry.add)}")
        for key in PROJECTS:
            objects = world.projects[key]
            obj = entry.obj(objects)
            sees = "allowed" in (expected(persona, key, entry.view), expected(persona, key, entry.change))
            if changelist.status_code == 200:
                listed = f"{base}{obj.pk}/change/" in changelist.content.decode()
                if listed != sees:
                    wrong.append(f"{persona} changelist lists {key}'s row: {listed}, want {sees}")
            if add.status_code == 200 and '<select name="project"' in add.content.decode():
                offered = f'<option value="{objects.project.pk}"' in add.content.decode()
                if offered != (expected(persona, key, entry.add) == "allowed"):
                    wrong.append(f"{persona} {label} add form offers {key}: {offered}")
            view_action = entry.view if expected(persona, key, entry.view) == "allowed" else entry.change
            checks = {
                "change": (f"{base}{obj.pk}/change/", view_action, visible_somewhere),
                "history": (f"{base}{obj.pk}/history/", view_action, True),
                "delete": (f"{base}{obj.pk}/delete/", entry.delete, may_anywhere(persona, entry.delete)),
            }
            for door, (path, action, somewhere) in checks.items():
                got = _admin_answer(client.get(path))
                # Django asks "may you do this to any row?" before it looks the row up (change, delete): a user who
                # may not is refused alike for every id, missing or not; one who may gets "doesn't exist" for rows
                # outside their projects, as for missing ones.
                want = _want(persona, key, action, visible=view_action) if somewhere else _anywhere(persona, action)
                if got != want:
                    wrong.append(f"{persona} {door} on {key}: {got}, want {want}")
            for name, action in entry.actions.items():
                target = objects.closed_batch if name == "make_dataset_snapshot" else obj
                effect = _run_action(client, base, name, target)
                want = is_staff(persona) and expected(persona, key, action) == "allowed"
                if effect != want:
                    wrong.append(f"{persona} action {name} on {key}: effect {effect}, want {want}")
    assert not wrong, "\n".join(wrong)


def _run_action(client: Client, base: str, name: str, obj) -> bool:
    """POSTs the action on one row in a rolled-back transaction; True if it took effect."""
    with transaction.atomic():
        response = client.post(base, {"action": name, "_selected_action": [obj.pk]})
        if name == "close_batches":
            effect = Batch.objects.get(pk=obj.pk).status == Batch.Status.CLOSED
        elif name == "cancel_runs":
            effect = TrainingRun.objects.get(pk=obj.pk).status == Status.CANCELLED
        elif name == "withdraw_items":
            effect = Item.objects.get(pk=obj.item_id).withdrawn_at is not None
        elif name == "reset_attempts":
            effect = QualificationAttempt.objects.get(pk=obj.pk).reset_at is not None
        elif name == "release_checkpoint":  # released, or refused by the service (which writes an audit row)
            from evaluation.models import AuditEvent

            effect = AuditEvent.objects.filter(project_id=obj.project_id, kind__startswith="release").exists()
        elif name == "accept_demonstrations":
            effect = type(obj).objects.get(pk=obj.pk).status == "accepted"
        elif name == "download_raw_judgments":  # a streamed CSV, or back to the changelist with a refusal
            effect = getattr(response, "streaming", False) and response.status_code == 200
        elif name in (
            "make_dataset_snapshot",
            "generate_responses",
            "make_evaluation_batch",
            "reject_demonstrations",
        ):  # an intermediate form
            effect = response.status_code == 200 and b'name="apply"' in response.content
        else:
            raise AssertionError(f"no effect check for action {name}")
        transaction.set_rollback(True)
    return effect


def test_admins_outside_projects_are_for_superusers(world):
    labels = {m._meta.label_lower for m in admin.site._registry} - set(ADMINS)
    assert labels, "users and groups at least are registered"
    for label in sorted(labels):
        app, model = label.split(".")
        for persona in PERSONAS:
            response = page_client(world, persona).get(f"/admin/{app}/{model}/")
            want = "allowed" if persona == "superuser" else ("forbidden" if is_staff(persona) else "login")
            assert _admin_answer(response) == want, (label, persona, response.status_code)


def test_admin_custom_doors(world):
    """The admin's own views: import into a project, download a dataset file, start and cancel a run."""
    for persona in PERSONAS:
        client = page_client(world, persona)
        start = _admin_answer(client.get("/admin/trainer/trainingrun/start/"))
        assert start == _anywhere(persona, Action.START_RUNS), (persona, start)
        for key in PROJECTS:
            objects = world.projects[key]
            doors = [
                ("get", f"/admin/annotation/project/{objects.project.pk}/import/", Action.IMPORT_ITEMS),
                ("get", f"/admin/annotation/project/{objects.project.pk}/import-labelled/", Action.IMPORT_ITEMS),
                ("get", f"/admin/rewards/datasetsnapshot/{objects.snapshot.pk}/files/manifest/", Action.VIEW_DATASETS),
                (
                    "get",
                    f"/admin/rewards/datasetsnapshot/jobs/{_job(objects, 'dataset_create').pk}/",
                    Action.MAKE_DATASET,
                ),
                ("post", f"/admin/trainer/trainingrun/{objects.queued_run.pk}/cancel/", Action.START_RUNS),
            ]
            for method, path, action in doors:
                response = rolled_back(lambda client=client, method=method, path=path: getattr(client, method)(path))
                if response.status_code == 302 and "/admin/login/" in response["Location"]:
                    got = "login"
                else:
                    got = {403: "forbidden", 404: "not_found"}.get(response.status_code, "allowed")
                want = "login" if not is_staff(persona) else expected(persona, key, action)
                assert got == want, (persona, key, path, response.status_code, want)


def test_a_mixed_selection_is_refused_whole(world):
    """A lead of one project who only views another (ML engineer there) cannot close that project's batch by
    selecting it with one of their own (finding 4)."""
    UserFactory(username="two-hats")
    member_add(project=world.projects["own"].project, username="two-hats", role=Role.LEAD)
    member_add(project=world.projects["other"].project, username="two-hats", role=Role.ML_ENGINEER)
    client = Client()
    client.force_login(get_user_model().objects.get(username="two-hats"))
    own, other = world.projects["own"].open_batch, world.projects["other"].open_batch
    response = client.post(
        "/admin/annotation/batch/", {"action": "close_batches", "_selected_action": [own.pk, other.pk]}, follow=True
    )
    assert "Nothing was done" in response.content.decode()
    assert Batch.objects.get(pk=other.pk).status == Batch.Status.OPEN
    assert Batch.objects.get(pk=own.pk).status == Batch.Status.OPEN
    client.post("/admin/annotation/batch/", {"action": "close_batches", "_selected_action": [own.pk]})
    assert Batch.objects.get(pk=own.pk).status == Batch.Status.CLOSED


def test_a_demonstration_is_taken_only_from_its_writer(world):
    """POST /assignments/{id}/demonstration/ on the writer's own demonstration lease: the writer is answered, anyone
    else gets the 404 a missing assignment gets (anonymous users the 401)."""
    from annotation.models import AnnotationSession

    for key in PROJECTS:
        objects, owner, now = world.projects[key], world.projects[key].extra["loop_owner"], timezone.now()
        batch = Batch.objects.create(
            project=objects.project,
            name=f"writing {key}",
            kind=Batch.Kind.DEMONSTRATION,
            criteria_version=objects.open_batch.criteria_version,
        )
        item = ItemFactory(batch=batch, response_a_text="", response_b_text="")
        session = AnnotationSession.objects.create(
            project=objects.project,
            kind=AnnotationSession.Kind.DEMONSTRATION,
            annotator=owner,
            started_at=now,
            expires_at=now + timedelta(hours=1),
            max_tasks=100,
        )
        lease = Assignment.objects.create(
            session=session,
            item=item,
            annotator=owner,
            left_is_a=True,
            leased_at=now,
            lease_expires_at=now + timedelta(minutes=10),
        )
        url, body = f"/api/v1/assignments/{lease.pk}/demonstration/", {"text": "A response written with some care."}
        for persona in PERSONAS:
            client = api_client(world, persona)
            status = rolled_back(
                lambda c=client, url=url, body=body: c.post(url, body, content_type="application/json")
            ).status_code
            if persona == "anonymous":
                assert status == 401, (persona, key)
            elif world.users[persona] == owner:
                assert status == 201, (persona, key)
            else:
                assert status == 404, (persona, key, status)
