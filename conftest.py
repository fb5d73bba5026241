"""Root fixtures: a project with one member of each role, and API clients logged in as each."""

import os

import pytest
from rest_framework.test import APIClient

from annotation.services import member_add
from tests.factories import ProjectFactory, UserFactory

pytest_plugins = ["tests.fixtures.worker", "tests.fixtures.tiny_models"]

# CI sets this in the PostgreSQL + Redis pass: tests that need a service then fail instead of skipping.
REQUIRE_SERVICES = os.environ.get("TANDEM_REQUIRE_SERVICES") == "1"


@pytest.fixture(autouse=True)
def _audit_log_flushable(request):
    """The guard the tests hold on SQLite (evaluation/migrations/0004): a transactional test's tables are emptied
    with DELETE after it, which the audit log's trigger refuses while the guard is locked. Lifted just before that
    flush; the next audit row written locks it again. PostgreSQL empties tables with TRUNCATE, which fires no row
    trigger."""
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or bool(marker and marker.kwargs.get("transaction"))
    if not transactional:
        yield
        return
    request.getfixturevalue("transactional_db")
    yield
    from django.db import connection

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("UPDATE evaluation_audit_guard SET locked = 0")


@pytest.fixture
def project(db):
    return ProjectFactory(name="Demo")


def _member(project, username: str, role: str):
    user = UserFactory(username=username)
    member_add(project=project, username=username, role=role)
    return user


@pytest.fixture
def annotator(project):
    return _member(project, "ann", "annotator")


@pytest.fixture
def lead(project):
    return _member(project, "lead", "lead")


@pytest.fixture
def ml_engineer(project):
    return _member(project, "mle", "ml_engineer")


@pytest.fixture
def stranger(db):
    return UserFactory(username="stranger")


@pytest.fixture
def superuser(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests")


def _client(user) -> APIClient:
    """A client with the user's own DRF token, as API users and bench/annotator_loop.py call the API: real
    authentication, so the annotator loop's fast path (annotation.annotator_fast_path) is what these tests reach."""
    from rest_framework.authtoken.models import Token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def annotator_client(annotator):
    return _client(annotator)


@pytest.fixture
def lead_client(lead):
    return _client(lead)


@pytest.fixture
def ml_engineer_client(ml_engineer):
    return _client(ml_engineer)


@pytest.fixture
def stranger_client(stranger):
    return _client(stranger)


@pytest.fixture
def anon_client():
    return APIClient()
