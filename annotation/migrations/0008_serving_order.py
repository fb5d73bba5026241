"""PostgreSQL only: tandem_lease_next version 2, whose serving order carries nothing about others' votes (issue 11).

The SQL is in annotation/sql/annotator_loop_v2.sql; SQLite runs the same steps in Python (annotation/services). The
function takes one argument more than version 1 (the probes' draws), so version 1's signature is dropped first, not
left beside it as an overload. tandem_record_judgment stays as 0006 installed it. Backwards, version 1 comes back
from its own file.
"""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent.parent / "sql"
V1 = SQL / "annotator_loop_v1.sql"
V2 = SQL / "annotator_loop_v2.sql"
DROP_V1 = """
DROP FUNCTION IF EXISTS tandem_lease_next(bigint, integer, timestamptz, double precision, double precision, boolean,
                                          uuid, integer, integer);
"""
DROP_V2 = """
DROP FUNCTION IF EXISTS tandem_lease_next(bigint, integer, timestamptz, double precision, double precision, boolean,
                                          uuid, integer, integer, bigint[]);
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_V1, params=None)
        schema_editor.execute(V2.read_text(), params=None)


def restore_v1(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_V2, params=None)
        schema_editor.execute(V1.read_text(), params=None)


class Migration(migrations.Migration):
    dependencies = [("annotation", "0007_fewer_indexes")]

    operations = [migrations.RunPython(create, restore_v1, elidable=False)]
