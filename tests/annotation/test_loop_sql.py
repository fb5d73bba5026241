"""What the migrations installed on PostgreSQL is what annotation/sql/ says, function by function.

Each annotator_loop_vN.sql file is a migration's input and is never edited; a later file replaces some of the
functions of an earlier one (CREATE OR REPLACE). So for every tandem_* function, the newest file that defines it
must match the database exactly: the same overloads, arguments, result and body. The files are compared through
PostgreSQL itself: each is run into a scratch schema inside a rolled-back savepoint, and pg_proc is compared.
"""

from pathlib import Path

import pytest
from django.db import connection, transaction

import annotation

pytestmark = pytest.mark.django_db

SQL_DIR = Path(annotation.__file__).resolve().parent / "sql"
FILES = sorted(SQL_DIR.glob("annotator_loop_v*.sql"), key=lambda p: int(p.stem.rsplit("_v", 1)[1]))

_FUNCTIONS = """
SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_function_result(p.oid), p.prosrc,
       p.provolatile, p.prorows, l.lanname
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = %s AND p.proname LIKE 'tandem\\_%%'
  -- Trigger functions (criteria immutability, migration 0009) are held by their behaviour's tests instead.
  AND pg_get_function_result(p.oid) <> 'trigger'
ORDER BY 1, 2
"""


def _functions(cursor, schema: str) -> dict[str, set[tuple]]:
    cursor.execute(_FUNCTIONS, [schema])
    found: dict[str, set[tuple]] = {}
    for row in cursor.fetchall():
        found.setdefault(row[0], set()).add(row)
    return found


def _defined_by(cursor, path: Path) -> dict[str, set[tuple]]:
    """The functions the file creates, as PostgreSQL parses them, in a scratch schema that does not outlive this."""
    schema = f"tandem_sql_check_{path.stem}"
    cursor.execute("SHOW search_path")
    search_path = cursor.fetchone()[0]
    try:
        with transaction.atomic():
            cursor.execute(f"CREATE SCHEMA {schema}")
            # Created in the first schema of the path; the tables their declarations name, found in the rest.
            cursor.execute(f"SET LOCAL search_path TO {schema}, {search_path}")
            cursor.execute(path.read_text(), None)
            defined = _functions(cursor, schema)
            transaction.set_rollback(True)
    finally:
        cursor.execute(f"SET LOCAL search_path TO {search_path}")
    return defined


def _installed_and_expected() -> tuple[dict, dict]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        installed = _functions(cursor, cursor.fetchone()[0])
        expected: dict[str, set[tuple]] = {}
        for path in FILES:
            defined = _defined_by(cursor, path)
            assert defined, f"{path.name} defines no tandem_* function"
            expected.update(defined)  # a later file's definition of a name replaces the earlier one
    return installed, expected


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL functions exist on PostgreSQL only")
def test_installed_functions_equal_the_newest_sql_file_defining_them():
    assert [p.name for p in FILES][:2] == ["annotator_loop_v1.sql", "annotator_loop_v2.sql"]
    installed, expected = _installed_and_expected()
    assert sorted(installed) == sorted(expected)
    for name, overloads in expected.items():
        assert installed[name] == overloads, f"{name} as installed differs from the newest file that defines it"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL functions exist on PostgreSQL only")
def test_the_comparison_sees_a_changed_body():
    changed = FILES[-1].read_text().replace("about to commit.", "about to commit (changed).")
    assert changed != FILES[-1].read_text()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(changed, None)
        installed, expected = _installed_and_expected()
        transaction.set_rollback(True)
    assert installed["tandem_lease_next"] != expected["tandem_lease_next"]
    assert installed["tandem_record_judgment"] == expected["tandem_record_judgment"]


def test_the_comparison_covers_version_5():
    """annotator_loop_v5.sql (migration 0017: demonstration sessions answered 'python', demonstration batches and
    labelled sources kept out of comparison sessions) is the newest file, so the tests above hold it installed."""
    assert FILES[-1].name == "annotator_loop_v5.sql"
    assert "'python'" in FILES[-1].read_text()
