"""Settings for the test suite: the same environment variables as production pick the database and broker."""

import getpass
import os
import tempfile
from pathlib import Path

from django.core.management.utils import get_random_secret_key

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, TANDEM_MODEL_ROOTS, VAR_DIR, env

SECRET_KEY = env("SECRET_KEY", default="") or get_random_secret_key()
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A file, not memory, so that worker processes started by a test see the same test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(Path(VAR_DIR) / "test-tandem.sqlite3")}
ARTIFACTS_DIR = str(Path(VAR_DIR) / "test-artifacts")
Path(ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
# Tests build tiny models in pytest's temporary folders (tests/fixtures/tiny_models.py), and the worker they start
# loads them with these same settings: pytest's temporary root (as pytest names it) is a model root here too.
_PYTEST_TEMP_ROOT = Path(os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir()).resolve()
try:
    _PYTEST_USER = getpass.getuser()
except (ImportError, KeyError, OSError):  # no user name: pytest says "unknown" too
    _PYTEST_USER = "unknown"
TANDEM_MODEL_ROOTS = [*TANDEM_MODEL_ROOTS, str(_PYTEST_TEMP_ROOT / f"pytest-of-{_PYTEST_USER}")]
# Throttling and login lockout are off, except in the tests of them (tests/core/test_throttling.py, test_lockout.py),
# which turn them on with the `settings` fixture: a suite that logs in and calls the API thousands of times from one
# address is not what they are for, and Client.login() passes no request, which django-axes requires.
TANDEM_THROTTLE_ENABLED = False
AXES_ENABLED = False
