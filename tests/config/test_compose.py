"""docker-compose.yml describes production: the services, their commands, the GPU reservation, shared artifacts."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _command(service: dict) -> list[str]:
    """The service's argv; for `sh -c "exec ..."` the command the shell execs, split as the shell splits it."""
    command = service["command"]
    if isinstance(command, list) and command[:2] == ["sh", "-c"]:
        return shlex.split(command[2].removeprefix("exec "))
    return command.split() if isinstance(command, str) else command


def _env_file_paths(service: dict) -> list[str]:
    entries = service.get("env_file", [])
    entries = [entries] if isinstance(entries, str | dict) else entries
    return [e["path"] if isinstance(e, dict) else e for e in entries]


def example_env() -> dict[str, str]:
    values = {}
    for line in (ROOT / "deploy" / "production.env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_production_services_exist(compose):
    assert {"postgres", "redis", "web", "worker", "gpu-worker", "beat"} <= set(compose["services"])


def test_one_beat_runs_the_periodic_tasks(compose):
    from config.celery import app

    command = compose["services"]["beat"]["command"]
    assert command[:4] == ["celery", "-A", "config", "beat"]
    # Every periodic task names a task the workers know, on a queue a compose worker consumes.
    app.loader.import_default_modules()
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks, entry["task"]
        assert entry["options"]["queue"] == "default"


def test_web_runs_gunicorn_with_production_settings(compose):
    web = compose["services"]["web"]
    command = _command(web)
    assert command[0] == "gunicorn"
    assert "config.wsgi" in command
    assert web["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert _command(compose["services"]["migrate"])[-2:] == ["migrate", "--noinput"]


def test_worker_serves_only_the_default_queue(compose):
    command = _command(compose["services"]["worker"])
    assert command[:4] == ["celery", "-A", "config", "worker"]
    assert command[command.index("-Q") + 1] == "default"


def test_gpu_worker_takes_one_task_at_a_time_on_an_nvidia_gpu(compose):
    gpu = compose["services"]["gpu-worker"]
    command = _command(gpu)
    assert command[:4] == ["celery", "-A", "config", "worker"]
    assert command[command.index("-Q") + 1].startswith("gpu,gpu-")  # gpu, and gpu-N for its N GPUs
    assert command[command.index("--concurrency") + 1] == "1"
    assert command[command.index("--prefetch-multiplier") + 1] == "1"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)


def test_artifacts_volume_is_shared_at_artifacts_dir(compose):
    artifacts_dir = example_env()["ARTIFACTS_DIR"]
    assert "artifacts" in compose["volumes"]
    for name in ("web", "worker", "gpu-worker"):
        assert f"artifacts:{artifacts_dir}" in compose["services"][name]["volumes"], name


def test_models_volume_is_shared_at_the_model_roots(compose):
    roots = example_env()["TANDEM_MODEL_ROOTS"]
    assert "models" in compose["volumes"] and roots != example_env()["ARTIFACTS_DIR"]
    for name in ("web", "worker", "gpu-worker"):
        assert f"models:{roots}" in compose["services"][name]["volumes"], name


def test_every_service_has_a_healthcheck(compose):
    for name in ("postgres", "redis", "web", "worker", "gpu-worker"):
        assert compose["services"][name]["healthcheck"]["test"], name


def test_env_file_exists_and_names_every_setting(compose):
    for name in ("web", "worker", "gpu-worker"):
        paths = _env_file_paths(compose["services"][name])
        assert "deploy/production.env.example" in paths, name
        assert (ROOT / paths[0]).is_file()
    env = example_env()
    for key in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "ARTIFACTS_DIR"):
        assert env.get(key), key
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["REDIS_URL"].startswith("redis://")


def test_dockerfile_installs_the_runtime_requirements():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "pip install -r requirements.txt" in dockerfile


def test_gpu_worker_serves_a_queue_named_after_its_gpu_count(compose):
    """The shell computes gpu-N as the container starts ($$ is compose's escape for $): run that line with echo in
    place of exec celery, on this machine's torch (no GPU here: gpu-0)."""
    line = compose["services"]["gpu-worker"]["command"][2].replace("$$", "$").replace("exec celery", "echo", 1)
    line = line.replace("python -c", f"{sys.executable} -c")
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True, timeout=120).stdout.split()
    import torch

    assert out[out.index("-Q") + 1] == f"gpu,gpu-{torch.cuda.device_count()}"
