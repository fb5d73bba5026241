"""A world for authorization tests: two projects with one object of every kind each, and one account per persona.

Personas are named by what they are to project "own"; "other" is a second project where only two of them hold a
role, so that every door is tried on an object of a project the user works in and on one of a project they don't.
"""

import io
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.utils import timezone

from annotation.models import AnnotationSession, Assignment, Batch, CriteriaVersion, ImportRecord, Item, Judgment
from annotation.services import member_add
from annotation.services.projects import DEFAULT_CRITERIA, criteria_version_create
from core.authz import STAFF_ROLES, Action, Role, role_may
from rewards.models import AgreementSnapshot, ProjectFlagRules
from rewards.services.snapshots import snapshot_compute
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory
from tests.trainer.runs_fixtures import finished_reward_model, make_snapshot
from trainer.models import Kind, Status, TrainingRun

# persona -> {project key: role}; superuser and anonymous hold none.
PERSONAS: dict[str, dict[str, str]] = {
    "annotator": {"own": Role.ANNOTATOR},
    "lead": {"own": Role.LEAD},
    "ml_engineer": {"own": Role.ML_ENGINEER},
    "reviewer": {"own": Role.REVIEWER},
    "member_elsewhere": {"other": Role.ML_ENGINEER},
    "annotator_staff_elsewhere": {"own": Role.ANNOTATOR, "other": Role.LEAD},
    "anonymous": {},
    "superuser": {},
}
PROJECTS = ("own", "other")


@dataclass
class ProjectObjects:
    project: object
    open_batch: Batch
    closed_batch: Batch
    item: Item
    spare_criteria: CriteriaVersion
    snapshot: object
    run: TrainingRun
    queued_run: TrainingRun
    judgment: Judgment
    session: AnnotationSession
    agreement: AgreementSnapshot
    flag_rules: ProjectFlagRules
    import_record: ImportRecord
    annotator: object  # a plain annotator of this project (not a persona), for member pages and removal
    extra: dict = field(default_factory=dict)


@dataclass
class World:
    users: dict[str, object]
    projects: dict[str, ProjectObjects]


def expected(persona: str, project_key: str, action: Action | None) -> str:
    """allowed | login | not_found | forbidden: what a door guarded by `action` must answer."""
    if persona == "anonymous":
        return "login"
    if action == "nobody":  # records only services write (core.admin.NOBODY)
        return "forbidden" if persona == "superuser" or PERSONAS[persona].get(project_key) else "not_found"
    if action is None:  # superusers only
        return "allowed" if persona == "superuser" else "forbidden"
    if persona == "superuser":  # may do everything but annotate, which needs a membership like anyone's
        return "not_found" if action == Action.ANNOTATE else "allowed"
    role = PERSONAS[persona].get(project_key)
    if role_may(role, action):
        return "allowed"
    return "not_found" if role is None else "forbidden"


def may_anywhere(persona: str, action: Action | None) -> bool:
    if persona == "anonymous":
        return False
    if action == "nobody":
        return False
    if persona == "superuser":
        return action != Action.ANNOTATE
    return action is not None and any(role_may(role, action) for role in PERSONAS[persona].values())


def is_staff(persona: str) -> bool:
    return persona == "superuser" or any(r in STAFF_ROLES for r in PERSONAS[persona].values())


def _objects(project, key: str) -> ProjectObjects:
    annotator = UserFactory(username=f"plain-annotator-{key}")
    member_add(project=project, username=annotator.username, role=Role.ANNOTATOR)
    snapshot = make_snapshot(project, pairs=8)
    closed_batch = snapshot.batches.first()
    open_batch = BatchFactory(project=project, name=f"open {key}")
    item = ItemFactory(batch=open_batch, response_a_model=f"secret-model-{key}", gold="a")
    judgment = Judgment.objects.filter(batch=closed_batch).select_related("assignment__session").first()
    spare = criteria_version_create(project=project, **DEFAULT_CRITERIA)  # pinned by no batch: deletable
    queued = TrainingRun.objects.create(
        project=project,
        kind=Kind.DPO,
        status=Status.QUEUED,
        config={"base_model": "tiny"},
        snapshot=snapshot,
        time_limit_seconds=60,
    )
    record = ImportRecord.objects.create(project=project, batch=open_batch, filename=f"{key}.jsonl", status="imported")
    return ProjectObjects(
        project=project,
        open_batch=open_batch,
        closed_batch=closed_batch,
        item=item,
        spare_criteria=spare,
        snapshot=snapshot,
        run=finished_reward_model(snapshot),
        queued_run=queued,
        judgment=judgment,
        session=judgment.assignment.session,
        agreement=snapshot_compute(batch=closed_batch),
        flag_rules=ProjectFlagRules.objects.create(project=project),
        import_record=record,
        annotator=annotator,
    )


def build_world() -> World:
    users = {"superuser": get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests")}
    projects = {key: ProjectFactory(name=f"Project {key}") for key in PROJECTS}
    for persona, roles in PERSONAS.items():
        if persona in ("anonymous", "superuser"):
            continue
        users[persona] = UserFactory(username=persona)
        for key, role in roles.items():
            member_add(project=projects[key], username=persona, role=role)
    world = World(users=users, projects={key: _objects(projects[key], key) for key in PROJECTS})
    for key in PROJECTS:
        # A session of the persona annotators, with an open lease, for the annotator loop's owner-only doors.
        objects = world.projects[key]
        now = timezone.now()
        owner = users["annotator"] if key == "own" else objects.annotator
        session = AnnotationSession.objects.create(
            project=objects.project,
            annotator=owner,
            started_at=now,
            expires_at=now + timezone.timedelta(hours=1),
            max_tasks=100,
        )
        lease = Assignment.objects.create(
            session=session,
            item=objects.item,
            annotator=owner,
            left_is_a=True,
            leased_at=now,
            lease_expires_at=now + timezone.timedelta(minutes=10),
        )
        objects.extra.update(loop_session=session, lease=lease, loop_owner=owner)
    return world


def import_file() -> io.BytesIO:
    line = (
        '{"id": "x-1", "prompt": "Hello?", "response_a": {"model": "m1", "text": "Hi."}, '
        '"response_b": {"model": "m2", "text": "Hello there."}}\n'
    )
    upload = io.BytesIO(line.encode())
    upload.name = "items.jsonl"
    return upload
