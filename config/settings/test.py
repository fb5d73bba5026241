"""Settings for the test suite: the same environment variables as production pick the database and broker."""

from pathlib import Path

from django.core.management.utils import get_random_secret_key

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, VAR_DIR, env

SECRET_KEY = env("SECRET_KEY", default="") or get_random_secret_key()
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A file, not memory, so that worker processes started by a test see the same test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(Path(VAR_DIR) / "test-tandem.sqlite3")}
ARTIFACTS_DIR = str(Path(VAR_DIR) / "test-artifacts")
Path(ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
