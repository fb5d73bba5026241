"""tandem_lease_next version 5 on PostgreSQL: demonstration and labelled batches kept out of comparison sessions, and
sessions of another kind (demonstration) handed to the Python steps.

annotation/sql/annotator_loop_v5.sql is version 4 with both; same signature, so CREATE OR REPLACE replaces it.
Backwards, version 4 comes back from its own file.
"""

from pathlib import Path

from django.db import migrations

SQL = Path(__file__).resolve().parent.parent / "sql"
V4 = SQL / "annotator_loop_v4.sql"
V5 = SQL / "annotator_loop_v5.sql"


def install_v5(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(V5.read_text(), params=None)


def restore_v4(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(V4.read_text(), params=None)


class Migration(migrations.Migration):
    dependencies = [("annotation", "0016_demonstrations_labelled_sources")]

    operations = [migrations.RunPython(install_v5, restore_v4, elidable=False)]
