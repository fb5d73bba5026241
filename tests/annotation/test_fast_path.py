"""The annotator loop's fast path (annotation.annotator_fast_path) answers exactly as the DRF views do.

Each answer is compared, status, headers and bytes, with the DRF view's answer to the same request on the same
state (TANDEM_LOOP_FAST_PATH off); requests the fast path must not take are shown to reach the DRF view.
"""

from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.views import APIView

from annotation import annotator_apis
from annotation.models import AnnotationSession, Assignment, Batch
from tests.factories import BatchFactory, ItemFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(annotator):
    return Token.objects.create(user=annotator).key


@pytest.fixture
def client(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def batch(project):
    return BatchFactory(project=project)


@contextmanager
def drf_calls():
    """Counts the requests that reach the two DRF views."""
    counted = []
    real = APIView.dispatch

    def counting(self, request, *args, **kwargs):
        if isinstance(self, (annotator_apis.NextAssignmentApi, annotator_apis.JudgmentSubmitApi)):
            counted.append(type(self).__name__)
        return real(self, request, *args, **kwargs)

    with mock.patch.object(APIView, "dispatch", counting):
        yield counted


def same_answer(fast, drf, *, statuses=None):
    """Same status (or the pair given), same headers, same bytes."""
    assert (fast.status_code, drf.status_code) == (statuses or (drf.status_code, drf.status_code))
    assert dict(fast.headers) == dict(drf.headers)
    assert fast.content == drf.content


def both(call, *, handed_on=False):
    """The fast path's answer, then the DRF view's to the same request. handed_on: the fast path is to pass this
    request to DRF (a NotFound, which for a token could be a bad token: DRF tells 401 from 404)."""
    with drf_calls() as counted:
        fast = call()
    assert counted == (["NextAssignmentApi"] if "next" in fast.request["PATH_INFO"] else ["JudgmentSubmitApi"]) * (
        handed_on
    ), counted
    with override_settings(TANDEM_LOOP_FAST_PATH=False), drf_calls() as counted:
        drf = call()
    assert len(counted) == 1
    return fast, drf


def session_of(client, project) -> int:
    return client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]


def test_next_and_judgment_answer_as_drf_does(client, project, batch):
    project.gold_rate = 0
    project.save()
    ItemFactory.create_batch(3, batch=batch)
    session_id = session_of(client, project)
    next_url = f"/api/v1/sessions/{session_id}/next/"

    with drf_calls() as counted:
        leased = client.get(next_url)
    assert counted == [] and leased.status_code == 200
    # A new lease (the fast path) and the same lease again (DRF's reload): the same bytes.
    with override_settings(TANDEM_LOOP_FAST_PATH=False):
        same_answer(leased, client.get(next_url))
    same_answer(*both(lambda: client.get(next_url)))

    url = f"/api/v1/assignments/{leased.json()['assignment_id']}/judgment/"
    with drf_calls() as counted:
        created = client.post(url, {"choice": "right", "dimensions": {}}, format="json")
    assert counted == [] and created.status_code == 201
    with override_settings(TANDEM_LOOP_FAST_PATH=False):
        same_answer(created, client.post(url, {"choice": "right"}, format="json"), statuses=(201, 200))
    same_answer(*both(lambda: client.post(url, {"choice": "right"}, format="json")))  # retried: 200
    fast, drf = both(lambda: client.post(url, {"choice": "tie"}, format="json"))  # a different answer: 409
    same_answer(fast, drf)
    assert fast.status_code == 409 and fast.json()["code"] == "conflict"


def test_refusals_answer_as_drf_does(client, project, batch, lead):
    project.gold_rate, project.session_max_tasks = 0, 2
    project.save()
    ItemFactory.create_batch(3, batch=batch)
    session_id = session_of(client, project)
    next_url = f"/api/v1/sessions/{session_id}/next/"
    first = client.get(next_url).json()["assignment_id"]
    url = f"/api/v1/assignments/{first}/judgment/"

    # Someone else's session and assignment: 404, from DRF.
    lead_client = APIClient()
    lead_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=lead).key}")
    for call in (lambda: lead_client.get(next_url), lambda: lead_client.post(url, {"choice": "left"}, format="json")):
        fast, drf = both(call, handed_on=True)
        same_answer(fast, drf)
        assert fast.status_code == 404 and fast.json()["code"] == "not_found"
    # A choice the project does not offer: the service's 400.
    project.allow_both_bad = False
    project.save()
    fast, drf = both(lambda: client.post(url, {"choice": "both_bad"}, format="json"))
    same_answer(fast, drf)
    assert fast.status_code == 400 and fast.json()["code"] == "invalid"

    # An expired lease: 410 lease_expired.
    Assignment.objects.filter(pk=first).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    fast, drf = both(lambda: client.post(url, {"choice": "left"}, format="json"))
    same_answer(fast, drf)
    assert fast.status_code == 410 and fast.json()["code"] == "lease_expired"

    # A closed batch: 410 batch_closed on the judgment, 204 on next.
    second = client.get(next_url).json()["assignment_id"]
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.CLOSED)
    fast, drf = both(lambda: client.post(f"/api/v1/assignments/{second}/judgment/", {"choice": "left"}, format="json"))
    same_answer(fast, drf)
    assert fast.status_code == 410 and fast.json()["code"] == "batch_closed"
    fast, drf = both(lambda: client.get(next_url))
    same_answer(fast, drf)
    assert fast.status_code == 204 and fast.content == b""

    # The session's task limit: 410 session_limit.
    AnnotationSession.objects.filter(pk=session_id).update(tasks_done=2)
    fast, drf = both(lambda: client.get(next_url))
    same_answer(fast, drf)
    assert fast.status_code == 410 and fast.json()["code"] == "session_limit"


def test_overlap_full_answers_as_drf_does(client, project, batch):
    project.gold_rate, project.overlap, project.max_overlap = 0, 1, 1
    project.save()
    item = ItemFactory(batch=batch)
    session_id = session_of(client, project)
    assignment_id = client.get(f"/api/v1/sessions/{session_id}/next/").json()["assignment_id"]
    type(item).objects.filter(pk=item.pk).update(judgment_count=1)  # judged by someone whose lease came back
    fast, drf = both(
        lambda: client.post(f"/api/v1/assignments/{assignment_id}/judgment/", {"choice": "left"}, format="json")
    )
    same_answer(fast, drf)
    assert fast.status_code == 410 and fast.json()["code"] == "overlap_full"


def test_a_logged_in_page_takes_the_fast_path_with_drfs_csrf_check(annotator, project, batch):
    project.gold_rate = 0
    project.save()
    ItemFactory.create_batch(2, batch=batch)
    page = Client(enforce_csrf_checks=True)
    page.force_login(annotator)
    secret = "a" * 32
    page.cookies["csrftoken"] = secret
    csrf = {"HTTP_X_CSRFTOKEN": secret}
    session_id = page.post(f"/api/v1/projects/{project.pk}/sessions/", **csrf).json()["id"]
    with drf_calls() as counted:
        shown = page.get(f"/api/v1/sessions/{session_id}/next/", HTTP_ACCEPT="application/json")
    assert counted == [] and shown.status_code == 200
    url = f"/api/v1/assignments/{shown.json()['assignment_id']}/judgment/"
    body = '{"choice": "left"}'

    with drf_calls() as counted:  # no CSRF token: DRF's 403, nothing stored
        refused = page.post(url, body, content_type="application/json")
    assert counted == ["JudgmentSubmitApi"] and refused.status_code == 403
    assert not Assignment.objects.get(pk=shown.json()["assignment_id"]).judged_at
    with drf_calls() as counted:  # the page's body, justification included
        stored = page.post(url, '{"choice": "left", "dimensions": {}, "justification": ""}', "application/json", **csrf)
    assert counted == [] and stored.status_code == 201


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"HTTP_ACCEPT": "text/html"},  # the browsable API
        {"HTTP_ACCEPT": "application/json; indent=4"},
        {"QUERY_STRING": "format=json"},
        {"HTTP_AUTHORIZATION": "Bearer abc"},
        {"HTTP_AUTHORIZATION": "Token"},
        {"HTTP_AUTHORIZATION": "Token not-a-token"},
        {"HTTP_AUTHORIZATION": None},  # no credentials at all
    ],
)
def test_other_requests_go_to_drf(client, project, batch, request_kwargs):
    ItemFactory(batch=batch)
    session_id = session_of(client, project)
    kwargs = dict(request_kwargs)
    if "HTTP_AUTHORIZATION" in kwargs:
        client.credentials(**({} if kwargs["HTTP_AUTHORIZATION"] is None else kwargs))
        kwargs.pop("HTTP_AUTHORIZATION")
    with drf_calls() as counted:
        answer = client.get(f"/api/v1/sessions/{session_id}/next/", **kwargs)
    assert counted == ["NextAssignmentApi"]
    assert answer.status_code in (200, 401, 403)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ('{"choice": "left", "justification": 5}', "application/json", 201),  # DRF's CharField takes a number
        ('{"choice": "left"', "application/json", 400),  # not JSON
        ('{"choice": NaN}', "application/json", 400),
        ('{"choice": "LEFT"}', "application/json", 400),
        ("choice=left", "application/x-www-form-urlencoded", 201),
        ('{"choice": "left"}', "application/json; charset=latin-1", 201),
    ],
)
def test_other_bodies_go_to_drf(client, project, batch, body, content_type, status):
    ItemFactory(batch=batch)
    session_id = session_of(client, project)
    assignment_id = client.get(f"/api/v1/sessions/{session_id}/next/").json()["assignment_id"]
    with drf_calls() as counted:
        answer = client.generic("POST", f"/api/v1/assignments/{assignment_id}/judgment/", body, content_type)
    assert counted == ["JudgmentSubmitApi"]
    assert answer.status_code == status, answer.content


def test_inactive_token_owner_gets_drfs_401(client, annotator, project, batch):
    ItemFactory(batch=batch)
    session_id = session_of(client, project)
    annotator.is_active = False
    annotator.save()
    with drf_calls() as counted:
        answer = client.get(f"/api/v1/sessions/{session_id}/next/")
    assert counted == ["NextAssignmentApi"] and answer.status_code == 401


def test_the_schema_still_documents_the_drf_views(anon_client):
    from django.urls import resolve

    for path in ("/api/v1/sessions/1/next/", "/api/v1/assignments/00000000-0000-0000-0000-000000000000/judgment/"):
        assert resolve(path).func.cls in (annotator_apis.NextAssignmentApi, annotator_apis.JudgmentSubmitApi)
