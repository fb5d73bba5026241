"""PostgreSQL only: the annotator loop's lease and judgment writes as functions, one round trip each.

The SQL is in annotation/sql/annotator_loop_v1.sql; SQLite runs the same steps in Python (annotation/services).
"""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent.parent / "sql" / "annotator_loop_v1.sql"
DROP = """
DROP FUNCTION IF EXISTS tandem_lease_next(bigint, integer, timestamptz, double precision, double precision, boolean,
                                          uuid, integer, integer);
DROP FUNCTION IF EXISTS tandem_record_judgment(uuid, integer, timestamptz, text, text, jsonb, text, double precision,
                                               boolean, boolean, boolean, integer);
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SQL.read_text(), params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("annotation", "0005_item_queue_index")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
