"""What the PostgreSQL benches share: a fresh database with Tandem's tables, and the settings they run Django with.
(`make bench` skips files starting with `_`.)"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_environment(*, database_url: str, workdir: str) -> None:
    """Production-like settings on a bench database: DEBUG off, quiet logs, the test client's host allowed."""
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="config.settings.local",
        TANDEM_VAR_DIR=str(Path(workdir) / "var"),
        DEBUG="False",
        LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="testserver,localhost",
    )


def migrate() -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=dict(os.environ), check=True)


def fresh_database(database_url: str) -> None:
    """Drop and create the database, then migrate it."""
    import psycopg

    base, dbname = database_url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    migrate()
