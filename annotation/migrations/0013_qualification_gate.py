"""tandem_lease_next version 4 on PostgreSQL: the qualification gate and qualification batches kept out of live work.

annotation/sql/annotator_loop_v4.sql is version 3 with both; same signature, so CREATE OR REPLACE replaces it.
Backwards, version 3 comes back from its own file (before 0012 drops the table version 4 reads).
"""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent.parent / "sql"
V3 = SQL / "annotator_loop_v3.sql"
V4 = SQL / "annotator_loop_v4.sql"


def install_v4(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(V4.read_text(), params=None)


def restore_v3(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(V3.read_text(), params=None)


class Migration(migrations.Migration):
    dependencies = [("annotation", "0012_qualification")]

    operations = [migrations.RunPython(install_v4, restore_v3, elidable=False)]
