"""The OpenAPI schema and docs load, and schemathesis, fed by that schema, cannot make any endpoint answer 5xx.

Generated requests go through the WSGI app with real DRF tokens, as an annotator and as a lead; each is sent
as generated (mostly unknown ids: 404s) and again with its path ids replaced by the user's real project,
session and open assignment, so the random bodies reach the code behind the lookups.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis.generation import GenerationMode

from annotation.services import member_add
from annotation.services.assignments import assignment_next
from annotation.services.sessions import session_start
from config.wsgi import application
from tests.factories import BatchFactory, ItemFactory, UserFactory

pytestmark = pytest.mark.django_db

# Examples per operation: the whole run stays well under a minute on two cores.
EXAMPLES = 25


def test_schema_loads_and_docs_render(client):
    client.force_login(UserFactory())  # behind login by default (TANDEM_API_DOCS_PUBLIC; tests/core/test_headers.py)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/sessions/{session_id}/next/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_ids_past_bigint_are_404_not_500(annotator_client):
    """Found by the run below: the hand-written SQL of `next` once overflowed the driver on such an id."""
    huge = 1479092192460182074186553884672
    assert annotator_client.get(f"/api/v1/sessions/{huge}/next/").status_code == 404
    assert annotator_client.get(f"/api/v1/sessions/{huge}/").status_code == 404
    assert annotator_client.post(f"/api/v1/projects/{huge}/sessions/").status_code == 404


@pytest.fixture
def api_schema(db, settings):
    settings.TANDEM_API_DOCS_PUBLIC = True  # schemathesis reads the schema anonymously; the calls carry tokens
    # Like Django's test client: a request must not close the connection the test's transaction lives on.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def actors(project):
    """An annotator and a lead, each with a token, a session and an open lease on the project."""
    batch = BatchFactory(project=project)
    ItemFactory.create_batch(30, batch=batch)
    ItemFactory.create_batch(5, batch=batch, gold="a")
    found = []
    for username, role in (("schema-annotator", "annotator"), ("schema-lead", "lead")):
        user = UserFactory(username=username)
        member_add(project=project, username=username, role=role)
        session, _ = session_start(project=project, annotator=user)
        lease = assignment_next(session=session)
        ids = {"project_id": project.pk, "session_id": session.pk, "assignment_id": str(lease.pk)}
        found.append(({"Authorization": f"Token {Token.objects.create(user=user).key}"}, ids))
    return found


def test_no_endpoint_answers_5xx(api_schema, actors):
    # Driven by hand rather than by schemathesis' pytest plugin, whose lazy loader does not run under pytest 9.
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 7
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, actors, failures)
            except Unsatisfiable:
                # An operation with nothing that can be made invalid (no parameters, no body) has no negative cases.
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert failures == []


def _fuzz(operation, mode: GenerationMode, actors, failures: list) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def send(case):
        for headers, ids in actors:
            for path_parameters in _generated_then_real(case, ids):
                case.path_parameters = path_parameters
                response = case.call(headers=headers)
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} ({mode.value}) → "
                        f"{response.status_code}: {response.text[:300]}"
                    )

    send()


def _generated_then_real(case, ids: dict) -> list:
    if not case.path_parameters:
        return [case.path_parameters]
    return [dict(case.path_parameters), {k: ids.get(k, v) for k, v in case.path_parameters.items()}]
