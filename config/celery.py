"""The Celery app. Queues are named here, in one place, so kinds of work scale apart without code changes."""

import os
from enum import StrEnum

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


class Queues(StrEnum):
    # Short, frequent work for the web app: metric snapshots, exports.
    DEFAULT = "default"
    # Long training runs on GPU hosts, one task per process.
    GPU = "gpu"


app = Celery("tandem")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_default_queue = Queues.DEFAULT.value
app.conf.task_queues = [Queue(q.value, Exchange(q.value), routing_key=q.value) for q in Queues]
app.conf.task_routes = {"trainer.*": {"queue": Queues.GPU.value}}
app.autodiscover_tasks()


@app.task(name="tandem.ping")
def ping() -> str:
    """Answers from a worker: lets tests and health checks see that the broker and a worker work."""
    return "pong"
