"""Guessing API tokens: past the limit of failed token authentications from one address, every token request from
there answers 429 with Retry-After, the right token included, on the annotator loop's fast path and the DRF views."""

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core import lockout

ADDRESS, OTHER = "203.0.113.7", "198.51.100.9"


@pytest.fixture
def token_lockout(settings):
    settings.AXES_ENABLED = True  # the test settings turn lockout off
    settings.TANDEM_TOKEN_FAILURE_LIMIT = 3
    cache.clear()
    lockout._RECENT.clear()  # the fast path's one-second memory of each address
    yield
    cache.clear()
    lockout._RECENT.clear()


def _client(key: str, address: str = ADDRESS) -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_an_address_that_guesses_tokens_is_locked_out(token_lockout, annotator, project):
    good = Token.objects.get_or_create(user=annotator)[0].key
    session = _client(good).post(f"/api/v1/projects/{project.pk}/sessions/")
    assert session.status_code == 201
    next_url = f"/api/v1/sessions/{session.json()['id']}/next/"
    for n in range(3):
        assert _client(f"guess{n:036d}").get("/api/v1/projects/").status_code == 401
    for url in ("/api/v1/projects/", next_url):  # a DRF view, and the fast path's endpoint
        refused = _client(good).get(url)
        assert refused.status_code == 429, url
        assert refused.json()["code"] == "locked_out"
        assert 0 < int(refused["Retry-After"]) <= 15 * 60
    # Another address is not locked; requests without a token are not affected either.
    assert _client(good, OTHER).get(next_url).status_code in (200, 204)
    assert APIClient(REMOTE_ADDR=ADDRESS).get("/api/v1/projects/").status_code == 401


def test_the_cool_off_lifts_it(token_lockout, annotator, settings):
    good = Token.objects.get_or_create(user=annotator)[0].key
    for n in range(3):
        _client(f"guess{n:036d}").get("/api/v1/projects/")
    assert _client(good).get("/api/v1/projects/").status_code == 429
    settings.TANDEM_LOGIN_COOLOFF_MINUTES = 0
    assert _client(good).get("/api/v1/projects/").status_code == 200


def test_off_in_the_test_settings_by_default(annotator):
    for n in range(25):
        assert _client(f"guess{n:036d}").get("/api/v1/projects/").status_code == 401
    good = Token.objects.get_or_create(user=annotator)[0].key
    assert _client(good).get("/api/v1/projects/").status_code == 200
