import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0001_initial"),
        ("core", "0001_outbox"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Job",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("kind", models.CharField(help_text='What the job does, e.g. "items_import".', max_length=50)),
                (
                    "action",
                    models.CharField(help_text="The core.authz action a user needs to read the job.", max_length=50),
                ),
                (
                    "handler",
                    models.CharField(
                        help_text="Dotted path of the function(job=..., upload=...) it runs.", max_length=200
                    ),
                ),
                ("args", models.JSONField(blank=True, default=dict, help_text="The handler's arguments, as JSON.")),
                (
                    "upload",
                    models.CharField(
                        blank=True,
                        help_text="The uploaded file, relative to ARTIFACTS_DIR; deleted after the job.",
                        max_length=300,
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                        ],
                        default="queued",
                        max_length=10,
                    ),
                ),
                (
                    "progress",
                    models.JSONField(blank=True, default=dict, help_text='{"done", "total", "unit"} at the last save.'),
                ),
                ("result", models.JSONField(blank=True, null=True)),
                (
                    "error",
                    models.JSONField(blank=True, help_text='{"code", "detail"} when the job failed.', null=True),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="jobs", to="annotation.project"
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["project", "-created_at"], name="core_job_project_recent")],
            },
        ),
    ]
