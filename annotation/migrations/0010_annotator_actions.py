"""Skip, report, withdraw and revise (issue 13): the fields and tables, and tandem_lease_next version 3 on PostgreSQL.

annotation/sql/annotator_loop_v3.sql is version 2 with withdrawn items served to nobody; same signature, so CREATE
OR REPLACE replaces it. Backwards, version 2 comes back from its own file (after the column it reads is gone).
"""

from pathlib import Path

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

SQL = Path(__file__).resolve().parent.parent / "sql"
V2 = SQL / "annotator_loop_v2.sql"
V3 = SQL / "annotator_loop_v3.sql"
CHOICES = [("a", "A is better"), ("b", "B is better"), ("tie", "Tie"), ("both_bad", "Both bad")]


def install_v3(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(V3.read_text(), params=None)


def restore_v2(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(V2.read_text(), params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0009_criteria_immutable"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Backwards, v2 goes back before withdrawn_at is dropped (operations are undone in reverse order).
        migrations.RunPython(migrations.RunPython.noop, restore_v2, elidable=False),
        migrations.AddField(
            model_name="assignment",
            name="skip_reason",
            field=models.CharField(blank=True, max_length=500, null=True),
        ),
        migrations.AddField(
            model_name="assignment",
            name="skipped_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="item",
            name="withdrawn_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="judgment",
            name="revised_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="project",
            name="revise_window_seconds",
            field=models.PositiveIntegerField(
                default=120,
                help_text="Seconds after a judgment in which its annotator may revise it, while the item is open; 0: never.",
            ),
        ),
        migrations.AddIndex(
            model_name="item",
            index=models.Index(condition=models.Q(withdrawn_at__isnull=False), fields=["batch"], name="item_withdrawn"),
        ),
        migrations.CreateModel(
            name="JudgmentRevision",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("old_choice", models.CharField(choices=CHOICES, max_length=8)),
                ("old_dimensions", models.JSONField(blank=True, default=dict)),
                ("old_justification", models.TextField(blank=True)),
                ("new_choice", models.CharField(choices=CHOICES, max_length=8)),
                ("new_dimensions", models.JSONField(blank=True, default=dict)),
                ("new_justification", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "judgment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="revisions", to="annotation.judgment"
                    ),
                ),
            ],
            options={"ordering": ["created_at"]},
        ),
        migrations.CreateModel(
            name="ItemReport",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("broken", "Broken (unreadable, truncated, identical responses…)"),
                            ("harmful", "Harmful content"),
                            ("out_of_scope", "Out of scope for these criteria"),
                        ],
                        max_length=20,
                    ),
                ),
                ("note", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "annotator",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="item_reports",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "assignment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="reports", to="annotation.assignment"
                    ),
                ),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="reports", to="annotation.item"
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "constraints": [
                    models.UniqueConstraint(fields=("assignment",), name="item_report_once_per_assignment")
                ],
            },
        ),
        migrations.RunPython(install_v3, migrations.RunPython.noop, elidable=False),
    ]
