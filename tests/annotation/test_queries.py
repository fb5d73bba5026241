"""SQL queries per request of the annotator loop, pinned: a new query on the hot path must be a decision.

Counted with token authentication, as the page and the benchmark call the API. On PostgreSQL the lease and the
judgment's writes are one function call each (annotation/sql/annotator_loop_v1.sql) in autocommit; on SQLite they
are the Python steps inside a transaction, whose atomic block is a SAVEPOINT and a RELEASE inside the test's
transaction (a BEGIN and a COMMIT in production).
"""

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import AnnotationSession, Assignment, Item, Judgment
from tests.factories import BatchFactory, ItemFactory, UserFactory

pytestmark = pytest.mark.django_db

POSTGRESQL = {
    # the token's owner; tandem_lease_next with the item, batch, criteria, session and project joined to its answer
    "next_new_lease": 2,
    # the token's owner; the same statement, answering with the open lease
    "next_reload": 2,
    # the token's owner; the assignment with what validates the answer; tandem_record_judgment
    "judgment": 3,
    # + one more judgment wanted when the completed item's votes split (the function returned the votes)
    "judgment_completing_a_split_item": 4,
    # the token's owner, the assignment, the stored judgment
    "judgment_retry": 3,
}
SQLITE = {
    # token, savepoint, session (locked), open lease, open batches, queue head (locked), lease recount, insert, release
    "next_new_lease": 9,
    # token, savepoint, session (locked), open lease's id, the lease with its item, release
    "next_reload": 6,
    # token, savepoint, assignment (locked), count UPDATE … RETURNING, insert, assignment UPDATE, session UPDATE,
    # release
    "judgment": 8,
    # + the item's votes when it completes, + one more judgment wanted when they split
    "judgment_completing_a_split_item": 10,
    # token, savepoint, assignment (locked), the stored judgment, release
    "judgment_retry": 5,
}


@pytest.fixture
def queries():
    return POSTGRESQL if connection.vendor == "postgresql" else SQLITE


@pytest.fixture
def token_client(annotator):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}")
    return client


def test_queries_per_next_and_per_judgment(token_client, project, queries, django_assert_num_queries):
    project.gold_rate = 0
    project.save()
    batch = BatchFactory(project=project)
    ItemFactory.create_batch(5, batch=batch)
    session_id = token_client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    for _ in range(3):
        with django_assert_num_queries(queries["next_new_lease"]):
            shown = token_client.get(f"/api/v1/sessions/{session_id}/next/")
        assert shown.status_code == 200
        with django_assert_num_queries(queries["next_reload"]):
            assert token_client.get(f"/api/v1/sessions/{session_id}/next/").status_code == 200
        url = f"/api/v1/assignments/{shown.json()['assignment_id']}/judgment/"
        with django_assert_num_queries(queries["judgment"]):
            assert token_client.post(url, {"choice": "left"}, format="json").status_code == 201
        with django_assert_num_queries(queries["judgment_retry"]):
            assert token_client.post(url, {"choice": "left"}, format="json").status_code == 200


def test_queries_when_a_judgment_completes_a_split_item(token_client, project, queries, django_assert_num_queries):
    project.gold_rate = 0
    project.save()
    item = ItemFactory(batch=BatchFactory(project=project))
    # Two earlier votes, one each way: the third completes the item split, so it asks for a fourth.
    Item.objects.filter(pk=item.pk).update(judgment_count=2)
    session_id = token_client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    shown = token_client.get(f"/api/v1/sessions/{session_id}/next/").json()
    for n, choice in enumerate(["a", "b"]):
        other = UserFactory(username=f"earlier{n}")
        session = AnnotationSession.objects.create(
            project=project, annotator=other, started_at=item.created_at, expires_at=item.created_at, max_tasks=1
        )
        earlier = Assignment.objects.create(
            session=session,
            item=item,
            annotator=other,
            left_is_a=True,
            leased_at=item.created_at,
            lease_expires_at=item.created_at,
            judged_at=item.created_at,
        )
        Judgment.objects.create(
            assignment=earlier, item=item, batch=item.batch, annotator=other, choice=choice, shown_left="a", seconds=9
        )
    url = f"/api/v1/assignments/{shown['assignment_id']}/judgment/"
    with django_assert_num_queries(queries["judgment_completing_a_split_item"]):
        assert token_client.post(url, {"choice": "tie"}, format="json").status_code == 201
    item.refresh_from_db()
    assert (item.judgment_count, item.extra_judgments) == (3, 1)


def test_hand_written_reads_load_instances_as_the_orm_does(annotator_client, project):
    """The hot path's SQL reads (annotation.services.rows) give the same values and types as the ORM's own."""
    from django.db import transaction

    from annotation.services.assignments import _locked_session
    from annotation.services.judgments import _locked_assignment

    project.allow_tie, project.require_justification = False, True
    project.save()
    ItemFactory(batch=BatchFactory(project=project))
    session_id = annotator_client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    assignment_id = annotator_client.get(f"/api/v1/sessions/{session_id}/next/").json()["assignment_id"]
    session = AnnotationSession.objects.select_related("project").get(pk=session_id)
    assignment = Assignment.objects.select_related("item__project", "item__batch__criteria_version").get(
        pk=assignment_id
    )

    def values(instance, fields=None):
        return [
            (f.attname, getattr(instance, f.attname), type(getattr(instance, f.attname)))
            for f in type(instance)._meta.concrete_fields
            if fields is None or f.attname in fields
        ]

    with transaction.atomic():
        loaded = _locked_session(pk=session_id)
        assert values(loaded) == values(session) and values(loaded.project) == values(session.project)
        locked = _locked_assignment(assignment_id=assignment_id, annotator_id=session.annotator_id)
    assert values(locked) == values(assignment)
    assert values(locked.item.batch) == values(assignment.item.batch)
    assert values(locked.item.batch.criteria_version) == values(assignment.item.batch.criteria_version)
    assert values(locked.item.project) == values(assignment.item.project)
    item_fields = ("id", "project_id", "batch_id", "gold", "judgment_count", "extra_judgments")
    assert values(locked.item, item_fields) == values(assignment.item, item_fields)
    assert locked.item.response_a_text == assignment.item.response_a_text  # deferred, loads when touched


def test_the_lease_statement_loads_instances_as_the_orm_does(annotator, project):
    """assignment_next_for's instances, from tandem_lease_next's answer on PostgreSQL, equal the ORM's: for a new
    lease (the function's own columns) and for a reload (the open lease found again)."""
    from annotation.services.assignments import assignment_next_for
    from annotation.services.sessions import session_start

    project.gold_rate = 0
    project.save()
    ItemFactory(batch=BatchFactory(project=project))
    session_id = session_start(project=project, annotator=annotator)[0].pk

    def values(instance):
        return [(f.attname, getattr(instance, f.attname)) for f in type(instance)._meta.concrete_fields]

    for _ in ("new lease", "reload"):
        session, leased = assignment_next_for(session_id=session_id, annotator_id=annotator.pk)
        stored = Assignment.objects.select_related("session__project", "item__batch__criteria_version").get(
            pk=leased.pk
        )
        assert values(leased) == values(stored)
        assert values(leased.item) == values(stored.item)
        assert values(leased.item.batch) == values(stored.item.batch)
        assert values(leased.item.batch.criteria_version) == values(stored.item.batch.criteria_version)
        assert values(session) == values(stored.session)
        assert values(session.project) == values(stored.session.project)


def test_the_loops_token_lookup_refuses_as_drfs_does(token_client, annotator, project):
    """The loop's SQL token lookup (annotation.authentication.SqlTokenAuthentication) answers like DRF's own."""
    ItemFactory(batch=BatchFactory(project=project))
    session_id = token_client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    assert token_client.get(f"/api/v1/sessions/{session_id}/next/").status_code == 200
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    refused = stranger.get(f"/api/v1/sessions/{session_id}/next/")
    assert refused.status_code == 401 and refused["WWW-Authenticate"] == "Token"
    annotator.is_active = False
    annotator.save()
    assert token_client.get(f"/api/v1/sessions/{session_id}/next/").status_code == 401
    assert token_client.post(f"/api/v1/projects/{project.pk}/sessions/").status_code == 401  # DRF's, for comparison
