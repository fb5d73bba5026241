"""Writing demonstrations through the annotator API: demonstration sessions, `next` in them, and
POST /api/v1/assignments/{id}/demonstration/ with its idempotency, 409, 410, 404 and 400 rules.

Run on SQLite and, with DATABASE_URL set, on PostgreSQL (where `next` of a demonstration session goes from
tandem_lease_next's 'python' answer to the Python steps).
"""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from annotation.models import AnnotationSession, Assignment, Batch, Demonstration, Item
from annotation.services import member_add
from tests.annotation.demonstration_fixtures import TEXT, demonstration_batch, next_of, start, token_client, write
from tests.factories import BatchFactory, ItemFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def writing(project, annotator):
    project.description = "Write as a patient teacher would."
    project.demonstration_min_chars = 20
    project.demonstration_max_chars = 200
    project.save()
    return demonstration_batch(project)


@pytest.fixture
def client(annotator):
    return token_client(annotator)


def lease(client, project) -> tuple[int, dict]:
    session_id = start(client, project)
    response = next_of(client, session_id)
    assert response.status_code == 200, response.content
    return session_id, response.json()


# --- Sessions ---------------------------------------------------------------------------------------------------


def test_a_demonstration_session_is_its_own_kind_with_its_own_open_session(client, project, writing):
    url = f"/api/v1/projects/{project.pk}/sessions/"
    first = client.post(url, {"kind": "demonstration"}, format="json")
    assert first.status_code == 201
    assert first.json()["kind"] == "demonstration"
    again = client.post(url, {"kind": "demonstration"}, format="json")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    comparison = client.post(url)  # no body: comparison, as before
    assert comparison.status_code == 201
    assert comparison.json()["kind"] == "comparison"
    assert comparison.json()["id"] != first.json()["id"]
    assert client.post(url, {"kind": "comparison"}, format="json").json()["id"] == comparison.json()["id"]
    detail = client.get(f"/api/v1/sessions/{first.json()['id']}/").json()
    assert detail["kind"] == "demonstration"


def test_an_unknown_kind_is_refused_with_a_code(client, project, writing, stranger_client):
    url = f"/api/v1/projects/{project.pk}/sessions/"
    bad = client.post(url, {"kind": "essay"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_kind"
    assert client.post(url, {"kind": ["demonstration"]}, format="json").status_code == 400
    assert not AnnotationSession.objects.exists()
    # Someone with no role learns nothing about kinds: the 404 of a missing project.
    assert stranger_client.post(url, {"kind": "essay"}, format="json").status_code == 404


def test_the_break_after_a_session_holds_back_either_kind(client, project, writing):
    comparison = AnnotationSession.objects.get(pk=start(client, project, "comparison"))
    comparison.ended_at = timezone.now()
    comparison.tasks_done = comparison.max_tasks
    comparison.save()
    refused = client.post(f"/api/v1/projects/{project.pk}/sessions/", {"kind": "demonstration"}, format="json")
    assert refused.status_code == 429
    assert refused.json()["code"] == "on_break"


def test_an_open_session_of_the_other_kind_does_not_hold_back_a_new_one(client, project, writing):
    start(client, project, "comparison")
    AnnotationSession.objects.filter(kind="comparison").update(expires_at=timezone.now() + timedelta(hours=1))
    assert (
        client.post(f"/api/v1/projects/{project.pk}/sessions/", {"kind": "demonstration"}, format="json").status_code
        == 201
    )


# --- next -------------------------------------------------------------------------------------------------------


def test_next_gives_the_prompt_the_guidelines_and_the_limits(client, project, writing):
    session_id, body = lease(client, project)
    assert set(body) == {
        "assignment_id",
        "kind",
        "prompt",
        "guidelines",
        "min_chars",
        "max_chars",
        "lease_expires_at",
    }
    assert body["kind"] == "demonstration"
    assert body["prompt"].startswith("Explain idea number")
    assert (body["min_chars"], body["max_chars"]) == (20, 200)
    guidelines = body["guidelines"]
    assert guidelines["text"] == "Write as a patient teacher would."
    assert guidelines["criteria_version"] == writing.criteria_version.number
    assert guidelines["scope"] == writing.criteria_version.scope
    assert [d["key"] for d in guidelines["dimensions"]] == ["harmlessness", "honesty", "helpfulness"]
    assert guidelines["disqualifiers"] == list(writing.criteria_version.disqualifiers)
    # A reload answers the same lease.
    assert next_of(client, session_id).json()["assignment_id"] == body["assignment_id"]


def test_next_gives_a_conversation_as_messages(client, project, writing):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Explain recursion."},
    ]
    Item.objects.filter(batch=writing).update(prompt="", messages=messages)
    _session_id, body = lease(client, project)
    assert "prompt" not in body
    assert body["messages"] == messages


def test_next_answers_the_same_with_and_without_the_fast_path(client, project, writing):
    from tests.annotation.test_fast_path import drf_calls

    session_id = start(client, project)
    with drf_calls() as counted:
        body = next_of(client, session_id).json()
    assert counted == ["NextAssignmentApi"]  # the fast path handed the demonstration session on, leasing nothing
    assert Assignment.objects.count() == 1
    with override_settings(TANDEM_LOOP_FAST_PATH=False):
        assert next_of(client, session_id).json() == body


def test_the_fast_path_hands_a_demonstration_session_on_before_leasing(client, annotator, project, writing):
    from annotation.services.assignments import NotComparisonSession, assignment_next_for

    session_id = start(client, project)
    with pytest.raises(NotComparisonSession):
        assignment_next_for(session_id=session_id, annotator_id=annotator.pk, comparison_only=True)
    assert not Assignment.objects.exists()


def test_nothing_left_is_204_and_the_limits_are_the_sessions(client, project, writing):
    session_id = start(client, project)
    for _ in range(3):
        body = next_of(client, session_id).json()
        assert write(client, body["assignment_id"]).status_code == 201
    assert next_of(client, session_id).status_code == 204
    session = AnnotationSession.objects.get(pk=session_id)
    assert session.tasks_done == 3
    session.tasks_done = session.max_tasks
    session.save()
    limit = next_of(client, session_id)
    assert (limit.status_code, limit.json()["code"]) == (410, "session_limit")


def test_writing_the_last_task_ends_the_session(client, project, writing):
    project.session_max_tasks = 2
    project.save()
    session_id = start(client, project)
    for _ in range(2):
        assert write(client, next_of(client, session_id).json()["assignment_id"]).status_code == 201
    session = AnnotationSession.objects.get(pk=session_id)
    assert (session.tasks_done, session.ended_at is not None) == (2, True)
    assert next_of(client, session_id).json()["code"] == "session_limit"


def test_the_qualification_gate_does_not_hold_writers(client, project, writing):
    project.qualification_required = True
    project.save()
    qualification = BatchFactory(project=project, name="qualification", kind=Batch.Kind.QUALIFICATION)
    ItemFactory(batch=qualification, gold="a")
    _session_id, body = lease(client, project)
    assert body["kind"] == "demonstration"
    assert Assignment.objects.get(pk=body["assignment_id"]).item.batch_id == writing.pk


# --- The demonstration ------------------------------------------------------------------------------------------


def test_write_then_retry_then_conflict(client, annotator, project, writing):
    session_id, body = lease(client, project)
    Assignment.objects.filter(pk=body["assignment_id"]).update(leased_at=timezone.now() - timedelta(seconds=42))
    created = write(client, body["assignment_id"], f"  {TEXT}\r\n")
    assert created.status_code == 201, created.content
    answer = created.json()
    assert set(answer) == {"id", "assignment_id", "chars", "created_at"}
    assert (answer["assignment_id"], answer["chars"]) == (body["assignment_id"], len(TEXT))
    stored = Demonstration.objects.get()
    assert (stored.text, stored.writer, stored.status) == (TEXT, annotator, "pending")
    assert (stored.item_id, stored.batch_id) == (Assignment.objects.get(pk=body["assignment_id"]).item_id, writing.pk)
    assert 42 <= stored.seconds < 60  # measured by the server from the lease
    retry = write(client, body["assignment_id"], TEXT)
    assert (retry.status_code, retry.json()) == (200, answer)
    conflict = write(client, body["assignment_id"], TEXT + " And more.")
    assert (conflict.status_code, conflict.json()["code"]) == (409, "conflict")
    assert Demonstration.objects.count() == 1
    assert Item.objects.get(pk=stored.item_id).judgment_count == 1
    assert AnnotationSession.objects.get(pk=session_id).tasks_done == 1
    assert Assignment.objects.get(pk=body["assignment_id"]).judged_at is not None


@pytest.mark.parametrize(
    ("text", "code"),
    [("Too short.", "text_too_short"), ("   " + "x" * 19 + "\n\n", "text_too_short"), ("y" * 201, "text_too_long")],
)
def test_the_projects_length_limits(client, project, writing, text, code):
    _session_id, body = lease(client, project)
    refused = write(client, body["assignment_id"], text)
    assert (refused.status_code, refused.json()["code"]) == (400, code)
    assert not Demonstration.objects.exists()
    assert write(client, body["assignment_id"], "z" * 200).status_code == 201  # the limits themselves are allowed


def test_a_body_without_text_or_with_a_nul_is_refused(client, project, writing):
    _session_id, body = lease(client, project)
    url = f"/api/v1/assignments/{body['assignment_id']}/demonstration/"
    for payload in ({}, {"text": 5 * [1]}, {"text": TEXT + "\x00"}):
        refused = client.post(url, payload, format="json")
        assert refused.status_code == 400, payload
        assert refused.json()["code"], payload
    assert not Demonstration.objects.exists()


def test_an_expired_or_skipped_lease_is_410(client, project, writing):
    session_id, body = lease(client, project)
    Assignment.objects.filter(pk=body["assignment_id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    expired = write(client, body["assignment_id"])
    assert (expired.status_code, expired.json()["code"]) == (410, "lease_expired")
    second = next_of(client, session_id).json()
    skip = client.post(f"/api/v1/assignments/{second['assignment_id']}/skip/", {"reason": "not my field"})
    assert skip.status_code == 200
    skipped = write(client, second["assignment_id"])
    assert (skipped.status_code, skipped.json()["code"]) == (410, "lease_expired")
    assert not Demonstration.objects.exists()


def test_a_closed_batch_or_a_prompt_with_its_writers_is_410(client, project, writing):
    session_id, body = lease(client, project)
    Batch.objects.filter(pk=writing.pk).update(status="closed")
    closed = write(client, body["assignment_id"])
    assert (closed.status_code, closed.json()["code"]) == (410, "batch_closed")
    Batch.objects.filter(pk=writing.pk).update(status="open")
    item = Assignment.objects.get(pk=body["assignment_id"]).item
    Item.objects.filter(pk=item.pk).update(judgment_count=1)  # another writer got there (writers_per_item 1)
    full = write(client, body["assignment_id"])
    assert (full.status_code, full.json()["code"]) == (410, "overlap_full")
    assert not Demonstration.objects.exists()
    assert AnnotationSession.objects.get(pk=session_id).tasks_done == 0


def test_someone_elses_assignment_is_404(client, project, writing):
    _session_id, body = lease(client, project)
    other = UserFactory(username="other-writer")
    member_add(project=project, username="other-writer", role="annotator")
    for url in (
        f"/api/v1/assignments/{body['assignment_id']}/demonstration/",
        "/api/v1/assignments/00000000-0000-0000-0000-000000000000/demonstration/",
    ):
        assert token_client(other).post(url, {"text": TEXT}, format="json").status_code == 404
    assert not Demonstration.objects.exists()


def test_a_demonstration_on_a_comparison_assignment_and_a_judgment_on_a_demonstration_one_are_refused(
    client, project, writing
):
    BatchFactory(project=project, name="pairs")
    ItemFactory(batch=Batch.objects.get(name="pairs"))
    comparison = next_of(client, start(client, project, "comparison")).json()
    assert "left" in comparison
    refused = write(client, comparison["assignment_id"])
    assert (refused.status_code, refused.json()["code"]) == (409, "wrong_task")
    _session_id, body = lease(client, project)
    url = f"/api/v1/assignments/{body['assignment_id']}/judgment/"
    for fast in (True, False):
        with override_settings(TANDEM_LOOP_FAST_PATH=fast):
            judged = client.post(url, {"choice": "left"}, format="json")
        assert (judged.status_code, judged.json()["code"]) == (409, "wrong_task"), fast
    assert write(client, body["assignment_id"]).status_code == 201
    assert not Assignment.objects.get(pk=body["assignment_id"]).item.judgments.exists()


def test_skip_report_and_renew_work_on_demonstration_assignments(client, project, writing):
    session_id, body = lease(client, project)
    renewed = client.post(f"/api/v1/assignments/{body['assignment_id']}/renew/")
    assert (renewed.status_code, renewed.json()["relet"]) == (200, False)
    reported = client.post(
        f"/api/v1/assignments/{body['assignment_id']}/report/", {"kind": "harmful", "note": "asks for a weapon"}
    )
    assert (reported.status_code, reported.json()["skipped"]) == (201, True)
    following = next_of(client, session_id).json()
    assert following["assignment_id"] != body["assignment_id"]
    assert write(client, following["assignment_id"]).status_code == 201
    judged = client.post(f"/api/v1/assignments/{following['assignment_id']}/skip/")
    assert (judged.status_code, judged.json()["code"]) == (409, "already_judged")


def test_a_lapsed_lease_is_let_again_only_while_the_prompt_wants_writers(client, project, writing):
    Item.objects.filter(batch=writing).exclude(pk=Item.objects.filter(batch=writing).first().pk).delete()
    _session_id, body = lease(client, project)
    Assignment.objects.filter(pk=body["assignment_id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    relet = client.post(f"/api/v1/assignments/{body['assignment_id']}/renew/")
    assert (relet.status_code, relet.json()["relet"]) == (200, True)
    # It lapses again, and another writer takes the prompt's one place meanwhile.
    Assignment.objects.filter(pk=body["assignment_id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    other = UserFactory(username="quick-writer")
    member_add(project=project, username="quick-writer", role="annotator")
    quick = token_client(other)
    taken = next_of(quick, start(quick, project)).json()
    assert (
        Assignment.objects.get(pk=taken["assignment_id"]).item_id
        == Assignment.objects.get(pk=body["assignment_id"]).item_id
    )
    lost = client.post(f"/api/v1/assignments/{body['assignment_id']}/renew/")
    assert (lost.status_code, lost.json()["code"]) == (410, "lease_lost")
