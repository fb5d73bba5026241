"""API throttling (core/throttling.py): 429 {"code": "throttled"} with Retry-After per user and per address, the
annotator loop's fast path counted exactly as the DRF views count, heavy writes limited on their own, and a cache
that does not answer letting requests through."""

import time
from contextlib import contextmanager
from unittest import mock

import pytest
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from annotation import annotator_apis
from core import throttling as core_throttling
from tests.factories import BatchFactory, ItemFactory

pytestmark = pytest.mark.django_db


# The throttles' clock, stopped one second into a minute: a test's requests all fall in one window.
NOW = (time.time() // 60) * 60 + 1


@pytest.fixture
def throttling(settings):
    """Throttling on (the test settings turn it off), with small rates."""
    settings.TANDEM_THROTTLE_ENABLED = True
    settings.TANDEM_THROTTLE_USER = "4/min"
    settings.TANDEM_THROTTLE_ANON = "3/min"
    settings.TANDEM_THROTTLE_HEAVY = "2/min"
    with (
        mock.patch.object(SimpleRateThrottle, "timer", staticmethod(lambda: NOW)),
        mock.patch.object(core_throttling, "_COUNTS", core_throttling._Counts()),  # this process's share, fresh
    ):
        yield settings


def fresh_counts(*users, addresses=()) -> None:
    """The cache outlives a test's transaction (and is Redis in the PostgreSQL pass), and user ids come back."""
    window = int(NOW // 60)
    idents = [f"{scope}_{user.pk}" for user in users for scope in ("user", "snapshot")]
    idents += [f"anon_{address}" for address in addresses]
    cache.delete_many([f"throttle_{ident}_{window}" for ident in idents])


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "throttled"
    assert "throttled" in response.json()["detail"]
    assert int(response["Retry-After"]) == 59  # the window's end, from NOW


@contextmanager
def drf_calls():
    """The annotator loop's requests that reach the DRF views (the others were answered by the fast path)."""
    counted = []
    real = APIView.dispatch

    def counting(self, request, *args, **kwargs):
        if isinstance(self, (annotator_apis.NextAssignmentApi, annotator_apis.JudgmentSubmitApi)):
            counted.append(type(self).__name__)
        return real(self, request, *args, **kwargs)

    with mock.patch.object(APIView, "dispatch", counting):
        yield counted


def test_a_user_past_their_rate_gets_429_with_retry_after_and_others_do_not(
    throttling, annotator, lead, annotator_client, lead_client
):
    fresh_counts(annotator, lead)
    for _ in range(4):
        assert annotator_client.get("/api/v1/projects/").status_code == 200
    assert_throttled(annotator_client.get("/api/v1/projects/"))
    assert lead_client.get("/api/v1/projects/").status_code == 200


def test_throttling_is_off_in_the_test_settings_and_when_disabled(settings, annotator, annotator_client):
    assert settings.TANDEM_THROTTLE_ENABLED is False
    settings.TANDEM_THROTTLE_USER = "1/min"
    fresh_counts(annotator)
    assert all(annotator_client.get("/api/v1/projects/").status_code == 200 for _ in range(5))


@pytest.fixture
def session_id(project, annotator, annotator_client) -> int:
    batch = BatchFactory(project=project)
    ItemFactory.create_batch(10, batch=batch)
    fresh_counts(annotator)
    response = annotator_client.post(f"/api/v1/projects/{project.pk}/sessions/")
    assert response.status_code == 201
    return response.json()["id"]


def test_the_fast_path_counts_on_the_same_key_as_the_drf_views(throttling, annotator_client, session_id):
    """Starting the session (DRF) was the first request; `next` through the fast path and a DRF read share the
    rest of the user's four, and the fifth is refused by the fast path as the DRF view refuses it."""
    with drf_calls() as drf:
        first = annotator_client.get(f"/api/v1/sessions/{session_id}/next/")
        assert first.status_code == 200
        assert annotator_client.get(f"/api/v1/sessions/{session_id}/").status_code == 200  # a DRF view
        assert annotator_client.get(f"/api/v1/sessions/{session_id}/next/").status_code == 200
        refused_fast = annotator_client.get(f"/api/v1/sessions/{session_id}/next/")
        judgment = f"/api/v1/assignments/{first.json()['assignment_id']}/judgment/"
        refused_post = annotator_client.post(judgment, {"choice": "left"}, format="json")
    assert drf == []  # every loop request above was the fast path's
    assert_throttled(refused_fast)
    assert_throttled(refused_post)
    throttling.TANDEM_LOOP_FAST_PATH = False
    refused_drf = annotator_client.get(f"/api/v1/sessions/{session_id}/next/")
    assert_throttled(refused_drf)
    assert refused_fast.json().keys() == refused_drf.json().keys()  # the seconds in the detail may differ by one
    assert {k: v for k, v in refused_fast.headers.items() if k != "Retry-After"} == {
        k: v for k, v in refused_drf.headers.items() if k != "Retry-After"
    }


def test_a_request_the_fast_path_hands_to_drf_is_counted_once(throttling, annotator_client, session_id):
    """The fast path counts a `next` before its service finds no such session, then hands it to the DRF view for the
    404: four requests in all (the session start included) still pass."""
    with drf_calls() as drf:
        assert annotator_client.get(f"/api/v1/sessions/{session_id + 1000}/next/").status_code == 404
    assert drf == ["NextAssignmentApi"]
    assert annotator_client.get(f"/api/v1/sessions/{session_id}/").status_code == 200
    assert annotator_client.get(f"/api/v1/sessions/{session_id}/").status_code == 200
    assert_throttled(annotator_client.get(f"/api/v1/sessions/{session_id}/"))


def test_the_fast_path_throttles_session_users_too(throttling, client, annotator, session_id):
    client.force_login(annotator)
    for _ in range(3):
        assert client.get(f"/api/v1/sessions/{session_id}/next/").status_code == 200
    assert_throttled(client.get(f"/api/v1/sessions/{session_id}/next/"))


def test_anonymous_calls_are_counted_per_address_and_forwarded_for_headers_do_not_reset_it(throttling, client):
    """The docs' start-up script answers anonymous callers when the docs are public."""
    throttling.TANDEM_API_DOCS_PUBLIC = True
    address = "198.51.100.7"
    fresh_counts(addresses=[address, "198.51.100.8"])
    for n in range(3):
        answer = client.get("/api/docs/?script", REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        assert answer.status_code == 200
    refused = client.get("/api/docs/?script", REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert refused.status_code == 429 and refused["Retry-After"] == "59"  # a page: the body is HTML
    assert client.get("/api/docs/?script", REMOTE_ADDR="198.51.100.8").status_code == 200


def test_heavy_writes_have_their_own_limit_and_the_lists_stay_free(
    throttling, project, ml_engineer, ml_engineer_client
):
    throttling.TANDEM_THROTTLE_USER = "100/min"
    fresh_counts(ml_engineer)
    url = f"/api/v1/projects/{project.pk}/datasets/"
    for _ in range(2):
        assert ml_engineer_client.post(url, {}, format="json").status_code != 429  # no closed batch: refused, counted
    assert_throttled(ml_engineer_client.post(url, {}, format="json"))
    assert ml_engineer_client.get(url).status_code == 200


def test_a_cache_that_does_not_answer_lets_requests_through(throttling, annotator_client, session_id):
    throttling.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    }
    started = time.monotonic()
    for _ in range(6):
        assert annotator_client.get(f"/api/v1/sessions/{session_id}/next/").status_code == 200
        assert annotator_client.get("/api/v1/projects/").status_code == 200
    assert time.monotonic() - started < 5


def test_a_rate_counted_in_batches_still_stops_at_the_limit(throttling, annotator, annotator_client):
    """At 300/min this process adds to the shared counter every third request (core.throttling._Counts)."""
    throttling.TANDEM_THROTTLE_USER = "300/min"
    fresh_counts(annotator)
    answers = [annotator_client.get("/api/v1/projects/").status_code for _ in range(302)]
    assert answers[:300] == [200] * 300 and answers[300:] == [429, 429]
    assert cache.get(f"throttle_user_{annotator.pk}_{int(NOW // 60)}") == 300  # what other processes see
