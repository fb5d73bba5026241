"""Settings for `make run` on one machine: SQLite and the filesystem broker unless the environment says otherwise."""

from pathlib import Path

from django.core.management.utils import get_random_secret_key

from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR, env

DEBUG = env.bool("DEBUG", default=True)


def _local_secret_key() -> str:
    # No secret in the code: a key is made once per checkout and kept out of git in var/.
    path = Path(VAR_DIR) / "secret_key"
    if not path.exists():
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env("SECRET_KEY", default="") or _local_secret_key()
