import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="OutboxMessage",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("task", models.CharField(help_text="The Celery task's registered name.", max_length=200)),
                ("args", models.JSONField(blank=True, default=list)),
                ("kwargs", models.JSONField(blank=True, default=dict)),
                (
                    "options",
                    models.JSONField(
                        blank=True, default=dict, help_text="apply_async options: queue, task_id, time limits."
                    ),
                ),
                (
                    "key",
                    models.CharField(
                        blank=True, db_index=True, help_text='What the message is for, e.g. "run:7".', max_length=200
                    ),
                ),
                (
                    "on_give_up",
                    models.CharField(
                        blank=True,
                        help_text="Dotted path of a function(message=...) called when sending gives up.",
                        max_length=200,
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[("pending", "Pending"), ("sent", "Sent"), ("failed", "Failed")],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_error", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "indexes": [
                    models.Index(
                        condition=models.Q(("status", "pending")),
                        fields=["next_attempt_at", "id"],
                        name="core_outbox_due",
                    ),
                    models.Index(fields=["status", "sent_at"], name="core_outbox_status_sent"),
                ],
            },
        ),
    ]
