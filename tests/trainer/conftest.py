"""Fixtures of the run tests that need no worker (tests/trainer/test_runs_*.py). Not autouse: the end-to-end tests'
worker reads ARTIFACTS_DIR from its own settings, so only tests that opt in move it into tmp_path."""

from pathlib import Path

import pytest
from django.test import Client

from tests.trainer.runs_fixtures import make_snapshot
from trainer.tasks import run_training_task


@pytest.fixture
def artifacts(settings, tmp_path) -> Path:
    """ARTIFACTS_DIR in the test's own folder: snapshots and checkpoints written by the test go there."""
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    return Path(settings.ARTIFACTS_DIR)


@pytest.fixture
def mle_admin(ml_engineer) -> Client:
    """The admin, logged in as an ML engineer (staff)."""
    ml_engineer.is_staff = True
    ml_engineer.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(ml_engineer)
    return client


@pytest.fixture
def model_roots(settings, tmp_path) -> Path:
    """The only model root is the test's own folder, with two model folders in it ("tiny" and "m": a config.json
    each, which is all that is checked before a run is queued)."""
    root = tmp_path / "models"
    for name in ("tiny", "m"):
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text("{}")
    settings.TANDEM_MODEL_ROOTS = [str(root)]
    return root.resolve()


@pytest.fixture
def sent(monkeypatch) -> list[list]:
    """The args of every run_training message sent, instead of a broker."""
    calls = []
    monkeypatch.setattr(run_training_task, "apply_async", lambda args=None, **options: calls.append(args))
    return calls


@pytest.fixture
def snapshot(project):
    return make_snapshot(project)
