"""The audit log is append-only in the database too: a trigger refuses every UPDATE and DELETE of an
evaluation_auditevent row, whatever the door (ORM, raw SQL, a console). PostgreSQL and SQLite each get their own.

TRUNCATE is left to the table's owner on PostgreSQL (the test runner's flush uses it); a deployment whose web role
does not own the tables cannot truncate either.
"""

from django.db import migrations

MESSAGE = "evaluation_auditevent is append-only"

POSTGRES_UP = f"""
CREATE OR REPLACE FUNCTION evaluation_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS evaluation_auditevent_append_only ON evaluation_auditevent;
CREATE TRIGGER evaluation_auditevent_append_only BEFORE UPDATE OR DELETE ON evaluation_auditevent
    FOR EACH ROW EXECUTE FUNCTION evaluation_auditevent_append_only();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS evaluation_auditevent_append_only ON evaluation_auditevent;
DROP FUNCTION IF EXISTS evaluation_auditevent_append_only();
"""
# SQLite: the same refusal, except that DELETE yields to a guard the test suite holds. Django's test runner empties
# the tables of a transactional test with DELETE (PostgreSQL's TRUNCATE fires no row trigger); a fixture sets
# evaluation_audit_guard.locked to 0 just before that flush, and the next audit row written locks it again (the
# AFTER INSERT trigger), so the log is never left open. Nothing in Tandem writes that table.
SQLITE_UP = [
    "CREATE TABLE IF NOT EXISTS evaluation_audit_guard (locked INTEGER NOT NULL);",
    "INSERT INTO evaluation_audit_guard (locked) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM evaluation_audit_guard);",
    f"""CREATE TRIGGER IF NOT EXISTS evaluation_auditevent_no_update BEFORE UPDATE ON evaluation_auditevent
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
    """CREATE TRIGGER IF NOT EXISTS evaluation_auditevent_no_delete BEFORE DELETE ON evaluation_auditevent
    WHEN (SELECT COALESCE(MIN(locked), 1) FROM evaluation_audit_guard) <> 0
    BEGIN SELECT RAISE(ABORT, 'evaluation_auditevent is append-only'); END;""",
    """CREATE TRIGGER IF NOT EXISTS evaluation_auditevent_relock AFTER INSERT ON evaluation_auditevent
    BEGIN UPDATE evaluation_audit_guard SET locked = 1 WHERE locked <> 1; END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS evaluation_auditevent_no_update;",
    "DROP TRIGGER IF EXISTS evaluation_auditevent_no_delete;",
    "DROP TRIGGER IF EXISTS evaluation_auditevent_relock;",
    "DROP TABLE IF EXISTS evaluation_audit_guard;",
]


def _run(schema_editor, statements) -> None:
    for statement in statements:
        schema_editor.execute(statement)


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(schema_editor, [POSTGRES_UP])
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_UP)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(schema_editor, [POSTGRES_DOWN])
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_DOWN)


class Migration(migrations.Migration):
    dependencies = [("evaluation", "0003_gate")]

    operations = [migrations.RunPython(forwards, backwards)]
