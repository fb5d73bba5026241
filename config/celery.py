"""The Celery app. Queues are named here, in one place, so kinds of work scale apart without code changes."""

import os
from enum import StrEnum

from celery import Celery
from celery.signals import worker_ready, worker_shutdown
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


# The worker registry (docs/SCALING.md): a worker that consumes a training queue (`gpu`, or `gpu-N` for a worker
# started with N GPUs: `celery -A config worker -Q gpu,gpu-4`) records what it can run, in the worker process only;
# the probe that imports torch runs in a child process. A run's queue (gpu, or the smallest gpu-N that fits its
# num_processes) is chosen when it is queued: trainer.capabilities.run_queue.
@worker_ready.connect
def _worker_registry_start(sender=None, **kwargs) -> None:
    from trainer.services.workers import worker_registry_start

    queues = list(sender.app.amqp.queues.consume_from or {})
    worker_registry_start(name=sender.hostname, queues=queues)


@worker_shutdown.connect
def _worker_registry_stop(sender=None, **kwargs) -> None:
    from trainer.services.workers import worker_registry_stop

    worker_registry_stop(name=getattr(sender, "hostname", "") or "")
