"""The web process serves pages, the API and the admin without importing torch, transformers or trl."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

# Runs in a fresh interpreter: the test process itself may have imported anything.
SCRIPT = r"""
import os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
from config.wsgi import application  # what gunicorn loads
from django.core.management import call_command
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
user = get_user_model().objects.create_superuser("web", "web@example.com", "pw")
client = Client()
statuses = {"anonymous /": client.get("/").status_code, "anonymous /admin/login/": client.get("/admin/login/").status_code}
client.force_login(user)
for path in ("/", "/api/v1/projects/", "/admin/login/", "/admin/"):
    statuses[path] = client.get(path, follow=True).status_code
print(statuses)
assert all(code == 200 for code in statuses.values()), statuses
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "transformers", "trl"})
print("heavy modules:", heavy)
sys.exit(3 if heavy else 0)
"""


def test_web_process_does_not_import_training_libraries(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env["TANDEM_VAR_DIR"] = str(tmp_path)  # its own SQLite file: this checks imports, not the database
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "heavy modules: []" in result.stdout
