"""Login lockout (django-axes, core/lockout.py): after TANDEM_LOGIN_FAILURE_LIMIT failed logins for one username from
one address, the login page and the admin's answer 429 with Retry-After, the right password included, until the
cool-off has passed; other addresses and other usernames are not affected."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "right-horse-battery"
ADDRESS = "203.0.113.5"


@pytest.fixture
def lockout(settings):
    settings.AXES_ENABLED = True  # the test settings turn it off
    return settings


@pytest.fixture
def person(db):
    user = UserFactory(username="dana")
    user.set_password(PASSWORD)
    user.save()
    return user


def log_in(client: Client, password: str, *, url: str = "/accounts/login/", username="dana", address=ADDRESS, **extra):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address, **extra)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_limit_and_cool_off_come_from_tandem_settings(settings):
    assert settings.AXES_FAILURE_LIMIT == settings.TANDEM_LOGIN_FAILURE_LIMIT == 5
    assert timedelta(minutes=settings.TANDEM_LOGIN_COOLOFF_MINUTES) == settings.AXES_COOLOFF_TIME
    assert settings.AXES_ENABLED is False  # in the test settings


def test_the_login_page_locks_out_after_the_limit_and_refuses_even_the_right_password(lockout, person, client):
    for _ in range(lockout.AXES_FAILURE_LIMIT - 1):
        answer = log_in(client, "wrong")
        assert answer.status_code == 200 and b"didn" in answer.content  # the form again, with its error
    locked = log_in(client, "wrong")
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == lockout.TANDEM_LOGIN_COOLOFF_MINUTES * 60
    assert b"Too many failed logins" in locked.content
    assert "Content-Security-Policy" in locked.headers

    right = log_in(client, PASSWORD)
    assert right.status_code == 429 and "Retry-After" in right.headers
    assert not logged_in(client)


def test_another_address_and_another_username_are_not_locked(lockout, person, client):
    for _ in range(lockout.AXES_FAILURE_LIMIT):
        log_in(client, "wrong")
    assert log_in(client, PASSWORD).status_code == 429
    other = UserFactory(username="eli")
    other.set_password(PASSWORD)
    other.save()
    assert log_in(Client(), PASSWORD, username="eli").status_code == 302
    elsewhere = Client()
    assert log_in(elsewhere, PASSWORD, address="203.0.113.99").status_code == 302
    assert logged_in(elsewhere)


def test_the_lock_lifts_after_the_cool_off(lockout, person, client):
    for _ in range(lockout.AXES_FAILURE_LIMIT):
        log_in(client, "wrong")
    assert log_in(client, PASSWORD).status_code == 429
    cool_off = timedelta(minutes=lockout.TANDEM_LOGIN_COOLOFF_MINUTES)
    AccessAttempt.objects.update(attempt_time=timezone.now() - cool_off - timedelta(seconds=5))
    assert log_in(client, PASSWORD).status_code == 302
    assert logged_in(client)


def test_a_success_before_the_limit_starts_the_count_again(lockout, person, client):
    for _ in range(lockout.AXES_FAILURE_LIMIT - 1):
        log_in(client, "wrong")
    assert log_in(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(lockout.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "wrong").status_code == 200
    assert log_in(client, PASSWORD).status_code == 302


def test_the_admin_login_locks_out_the_same_way(lockout, person, client):
    person.is_staff = True
    person.save()
    for _ in range(lockout.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "wrong", url="/admin/login/").status_code == 200
    assert log_in(client, "wrong", url="/admin/login/").status_code == 429
    locked = log_in(client, PASSWORD, url="/admin/login/")
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    assert client.get("/admin/").status_code == 302  # still sent to the login page


def test_a_script_is_answered_in_json_with_a_code(lockout, person, client):
    """A client that asks for JSON (as an API client or the page's fetch would) gets the API's error shape."""
    for _ in range(lockout.AXES_FAILURE_LIMIT):
        log_in(client, "wrong")
    answer = log_in(client, PASSWORD, HTTP_ACCEPT="application/json")
    assert answer.status_code == 429
    body = answer.json()
    assert body["code"] == "locked_out" and body["detail"]
    assert body["retry_after"] == int(answer["Retry-After"]) == lockout.TANDEM_LOGIN_COOLOFF_MINUTES * 60
