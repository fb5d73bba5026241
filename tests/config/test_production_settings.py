"""Production settings: `check --deploy` is clean with the example env and a real key; a placeholder key is refused."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.utils import get_random_secret_key

from tests.config.test_compose import example_env

ROOT = Path(__file__).resolve().parent.parent.parent


def _manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    """The example's values in an otherwise bare environment; paths moved under tmp so nothing is written to /var."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        **example_env(),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "TANDEM_VAR_DIR": str(tmp_path / "var"),
        "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "STATIC_ROOT": str(tmp_path / "static"),
    }


def test_check_deploy_is_clean_with_a_real_secret_key(production_env):
    result = _manage(
        ["check", "--deploy", "--fail-level", "WARNING"], {**production_env, "SECRET_KEY": get_random_secret_key()}
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output
    assert "WARNING" not in output


def test_production_keeps_a_generated_key_that_starts_with_a_dollar(production_env):
    # One key in 50 from get_random_secret_key() does; django-environ would read it as a reference to another variable.
    key = "$" + get_random_secret_key()[1:]
    script = "from django.conf import settings; print(settings.SECRET_KEY)"
    result = _manage(["shell", "-c", script], {**production_env, "SECRET_KEY": key})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == key


@pytest.mark.parametrize("secret_key", ["example", "", None], ids=["example-placeholder", "empty", "unset"])
def test_production_refuses_to_start_without_a_real_secret_key(production_env, secret_key):
    env = dict(production_env)
    if secret_key == "example":
        assert "change-me" in env["SECRET_KEY"]  # the example ships a placeholder, never a usable key
    elif secret_key is None:
        env.pop("SECRET_KEY")
    else:
        env["SECRET_KEY"] = secret_key
    result = _manage(["check"], env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set to a long random value in production" in result.stderr


def test_wsgi_entry_point_defaults_to_production_settings():
    # gunicorn imports config.wsgi with nothing else set: it must land on the settings that refuse weak keys.
    assert (
        'setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")'
        in (ROOT / "config" / "wsgi.py").read_text()
    )
