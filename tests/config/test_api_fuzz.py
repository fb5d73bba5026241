"""schemathesis over the whole API, as a lead, an ML engineer and an annotator: no request makes a 5xx.

Every operation of /api/schema/ gets positive and negative generated requests through the WSGI app, each checked
with schemathesis' `not_a_server_error`. Each request goes out twice: with the generated path ids (mostly unknown
or absurd ids), and with them replaced by real ones of the user's project (a batch, a session and its lease, a
dataset snapshot and its file, a run, a member), so that random bodies and queries reach the code behind the
lookups. Examples per operation are bounded so the run stays under about two minutes.
"""

from pathlib import Path

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from annotation.services.assignments import assignment_next
from annotation.services.sessions import session_start
from config.wsgi import application
from core.authz import Action
from core.models import Job
from tests.annotation.demonstration_rows import empty_demonstration_batch, prompt_item, written
from tests.factories import BatchFactory, ItemFactory
from tests.trainer.runs_fixtures import finished_reward_model, make_snapshot

pytestmark = pytest.mark.django_db

# Examples per operation and generation mode; 3 roles x 2 sets of path ids each.
EXAMPLES = 12


@pytest.fixture
def api_schema(db, settings, tmp_path):
    settings.TANDEM_API_DOCS_PUBLIC = True  # schemathesis reads the schema anonymously; the calls carry tokens
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    # Like Django's test client: a request must not close the connection the test's transaction lives on.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def actors(project, lead, ml_engineer, annotator):
    """(headers, real path ids) for each role of the project."""
    open_batch = BatchFactory(project=project, name="open")
    ItemFactory.create_batch(20, batch=open_batch)
    snapshot = make_snapshot(project)
    run = finished_reward_model(snapshot)
    session, _ = session_start(project=project, annotator=annotator)
    lease = assignment_next(session=session)
    job = Job.objects.create(project=project, kind="items_import", action=Action.IMPORT_ITEMS, handler="-")
    # A pending demonstration of the annotator's, for the lead's review (random bodies reach the review service).
    demos = empty_demonstration_batch(project, "demos")
    demonstration = written(prompt_item(demos, "demo-1", prompt="Say hi."), annotator.username, "Hi there, friend.")
    ids = {
        "job_id": job.pk,
        "project_id": project.pk,
        "batch_id": open_batch.pk,
        "snapshot_id": snapshot.pk,
        "run_id": run.pk,
        "name": "train.jsonl",
        "session_id": session.pk,
        "assignment_id": str(lease.pk),
        "username": annotator.username,
        "user_id": annotator.pk,
        "demonstration_id": demonstration.pk,
    }
    return [
        ({"Authorization": f"Token {Token.objects.create(user=user).key}"}, ids)
        for user in (lead, ml_engineer, annotator)
    ]


def test_no_operation_answers_5xx_for_any_role(api_schema, actors):
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, actors, failures)
            except Unsatisfiable:
                # An operation with nothing that can be made invalid (no parameters, no body) has no negative cases.
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert failures == [], "\n".join(failures)


def _fuzz(operation, mode: GenerationMode, actors, failures: list[str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def send(case):
        generated = dict(case.path_parameters or {})
        for headers, ids in actors:
            for path_parameters in [generated, {k: ids.get(k, v) for k, v in generated.items()}] if generated else [{}]:
                case.path_parameters = path_parameters
                response = case.call(headers=headers)
                try:
                    case.validate_response(response, checks=[not_a_server_error], headers=headers)
                except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a FailureGroup: list them all
                    failures.append(
                        f"{case.method} {case.formatted_path} ({mode.value}) -> {response.status_code}: "
                        f"{type(exc).__name__}: {str(exc)[:300]} | {response.text[:300]}"
                    )
        case.path_parameters = generated

    send()
