"""python manage.py seed_demo: a demo project, ~300 friendly items and one user per role, safe to run again."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotation.demo import demo_jsonl
from annotation.models import Project, Role
from annotation.services import ImportRejected, items_import, member_add, project_create

PROJECT_NAME = "Demo: helpful assistant"
PROJECT_DESCRIPTION = (
    "Everyday questions — cooking, travel, coding, writing, maths, science — each answered by two made-up "
    "models. Pick the more helpful, honest answer. Made by manage.py seed_demo."
)
BATCH_NAME = "Demo batch 1"
DEMO_FILENAME = "seed_demo.jsonl"
# username, project role (None: superuser without a membership; superusers act as leads everywhere)
DEMO_USERS = [
    ("admin", None),
    ("lead", Role.LEAD),
    ("mle", Role.ML_ENGINEER),
    ("annotator1", Role.ANNOTATOR),
    ("annotator2", Role.ANNOTATOR),
    ("annotator3", Role.ANNOTATOR),
]


class Command(BaseCommand):
    help = "Create (or refresh) the demo project, its items and demo users with new random passwords."

    def add_arguments(self, parser):
        parser.add_argument(
            "--url",
            default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/",
            help="Where the site will be served, for the printed instructions.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off. The demo resets the passwords of the users it names, including 'admin'.",
        )

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "seed_demo resets the passwords of users named admin, lead, mle, annotator1-3; with DEBUG off this "
                "looks like a real deployment, so it refuses. Pass --force if you really mean it."
            )
        project = Project.objects.filter(name=PROJECT_NAME).first()
        if project is None:
            project = project_create(name=PROJECT_NAME, description=PROJECT_DESCRIPTION)
        self._import_items(project)
        passwords = self._users(project)
        self._print_table(project, passwords, options["url"])

    def _import_items(self, project: Project) -> None:
        # The demo goes through the same service as every other import: a re-run skips what is already there.
        try:
            report = items_import(project=project, batch_name=BATCH_NAME, source=demo_jsonl(), filename=DEMO_FILENAME)
        except ImportRejected as exc:  # a broken demo file is a bug in annotation/demo, say where
            lines = "; ".join(f"line {e['line']}: {e['reason']}" for e in exc.report.errors[:5])
            raise CommandError(f"The demo data was rejected by the import: {lines}") from exc
        self.stdout.write(report.summary())
        total = sum(report.strata.values()) or 1
        mix = ", ".join(f"{name} {count} ({count / total:.0%})" for name, count in report.strata.items())
        self.stdout.write(f"Stratum mix: {mix}")
        for warning in report.warnings:
            self.stdout.write(self.style.WARNING(f"Warning: {warning}"))

    @transaction.atomic
    def _users(self, project: Project) -> list[tuple[str, str, str]]:
        User = get_user_model()
        rows = []
        for username, role in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            if role is None:
                user.is_staff = user.is_superuser = True
            user.save()
            if role is not None:
                member_add(project=project, username=username, role=role)
            rows.append((username, Role(role).label if role else "Superuser (admin site)", password))
        return rows

    def _print_table(self, project: Project, rows: list[tuple[str, str, str]], url: str) -> None:
        items = project.items.count()
        gold = project.items.exclude(gold="").count()
        width_user = max(len("user"), *(len(r[0]) for r in rows))
        width_role = max(len("role"), *(len(r[1]) for r in rows))
        out = [
            "",
            f'Project "{project.name}": {items} items ({gold} gold) in batch "{BATCH_NAME}".',
            "",
            f"  {'user':<{width_user}}  {'role':<{width_role}}  password",
            f"  {'-' * width_user}  {'-' * width_role}  {'-' * 16}",
            *(f"  {u:<{width_user}}  {r:<{width_role}}  {p}" for u, r, p in rows),
            "",
            f"Log in at {url}  (admin site: {url.rstrip('/')}/admin/)",
            "Passwords are new on every run of seed_demo.",
        ]
        self.stdout.write("\n".join(out))
