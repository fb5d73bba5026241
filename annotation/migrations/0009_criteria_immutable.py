"""Criteria versions are immutable in the database too: a trigger refuses an UPDATE that changes a version's content
(project, number, dimensions, disqualifiers, tie rule and guidance, scope, creation time), so QuerySet.update() and
raw SQL cannot do what CriteriaVersion.save() refuses. created_by may still change: deleting a user sets it to NULL.

PostgreSQL: a PL/pgSQL trigger function raising SQLSTATE 23000; SQLite: a trigger with RAISE(ABORT). Both reach
Django as IntegrityError. On SQLite, a later migration that rebuilds the table (Django's way to alter a column
there) drops its triggers: tests/annotation/test_criteria_immutable.py checks the trigger is installed after every
migration, so such a migration must create it again.
"""

from django.db import migrations

TABLE = "annotation_criteriaversion"
NAME = "tandem_criteria_version_immutable"
CONTENT = ("project_id", "number", "dimensions", "disqualifiers", "tie_rule", "tie_guidance", "scope", "created_at")
MESSAGE = "criteria versions are immutable: create a new version instead"

POSTGRESQL = f"""
CREATE OR REPLACE FUNCTION {NAME}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF ROW({", ".join(f"NEW.{c}" for c in CONTENT)}) IS DISTINCT FROM ROW({", ".join(f"OLD.{c}" for c in CONTENT)}) THEN
        RAISE EXCEPTION 'criteria version %: {MESSAGE}', OLD.id USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER {NAME} BEFORE UPDATE ON {TABLE} FOR EACH ROW EXECUTE FUNCTION {NAME}();
"""
POSTGRESQL_DROP = f"DROP TRIGGER IF EXISTS {NAME} ON {TABLE}; DROP FUNCTION IF EXISTS {NAME}();"

SQLITE = f"""
CREATE TRIGGER {NAME} BEFORE UPDATE ON {TABLE} FOR EACH ROW
WHEN {" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in CONTENT)}
BEGIN
    SELECT RAISE(ABORT, '{MESSAGE}');
END;
"""
SQLITE_DROP = f"DROP TRIGGER IF EXISTS {NAME};"


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL, params=None)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE, params=None)


def remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_DROP, params=None)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("annotation", "0008_serving_order")]

    operations = [migrations.RunPython(install, remove, elidable=False)]
