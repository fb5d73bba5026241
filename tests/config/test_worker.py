"""A real Celery worker answers on both queues, through whichever broker the environment configures."""

import os

import pytest
from django.conf import settings
from django.db import connection

from config.celery import Queues, ping

pytestmark = pytest.mark.worker
# CI's PostgreSQL + Redis pass sets this: then the services must be there, and the test fails if they are not.
REQUIRE_SERVICES = os.environ.get("TANDEM_REQUIRE_SERVICES") == "1"


@pytest.mark.parametrize("queue", [q.value for q in Queues])
def test_ping_is_answered_by_a_real_worker(celery_worker_process, queue):
    result = ping.apply_async(queue=queue) if queue != Queues.DEFAULT else ping.delay()
    assert result.get(timeout=60) == "pong"
    assert celery_worker_process.alive
    assert celery_worker_process.wait_for_log(f"Task tandem.ping[{result.id}] succeeded")  # this worker, no other


def test_worker_uses_the_test_database(celery_worker_process):
    from tests.fixtures.worker import worker_database_url

    url = worker_database_url()
    assert connection.settings_dict["NAME"].split("/")[-1] in url
    assert "test" in url.rsplit("/", 1)[-1]  # never the development or production database


@pytest.mark.skipif(not REQUIRE_SERVICES, reason="TANDEM_REQUIRE_SERVICES=1 is the PostgreSQL + Redis pass")
@pytest.mark.postgres
@pytest.mark.redis
def test_required_services_are_in_use_and_reachable(db):
    import redis

    assert connection.vendor == "postgresql", f"DATABASE_URL should point at PostgreSQL, got {connection.vendor}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert settings.REDIS_URL.startswith("redis://"), "REDIS_URL is not set"
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL
    assert redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5).ping() is True
