"""python manage.py seed_demo: a demo project, ~300 friendly items, one user per role, an earlier batch already
judged by simulated annotators and closed, and a dozen prompts to answer in writing; safe to run again."""

import io
import json
import os
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotation.models import AnnotationSession, Assignment, Batch, Item, Judgment, Project, Role
from annotation.services import ImportRejected, items_import, member_add, project_create
from annotation.services.batches import batch_close
from demo.data import demo_jsonl, demonstration_jsonl
from demo.data.history import SIM_ANNOTATORS, history_lines, plan_votes

PROJECT_NAME = "Demo: helpful assistant"
PROJECT_DESCRIPTION = (
    "Everyday questions — cooking, travel, coding, writing, maths, science — each answered by two made-up "
    "models. Pick the more helpful, honest answer. Made by manage.py seed_demo."
)
BATCH_NAME = "Demo batch 1"
DEMO_FILENAME = "seed_demo.jsonl"
HISTORY_BATCH_NAME = "Demo history"
HISTORY_FILENAME = "seed_demo_history.jsonl"
DEMONSTRATION_BATCH_NAME = "Demo demonstrations"
DEMONSTRATION_FILENAME = "seed_demo_demonstrations.jsonl"
# The history batch is dated this long before the open batch, so it is the earlier one (the open batch's baseline).
HISTORY_DAYS_EARLIER = 10
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
        self._import_items(project, BATCH_NAME, demo_jsonl(), DEMO_FILENAME)
        self._history(project)
        self._import_items(
            project,
            DEMONSTRATION_BATCH_NAME,
            demonstration_jsonl(),
            DEMONSTRATION_FILENAME,
            kind=Batch.Kind.DEMONSTRATION,
        )
        passwords = self._users(project)
        self._print_table(project, passwords, options["url"])

    def _import_items(
        self, project: Project, batch_name: str, source: io.BytesIO, filename: str, kind: str | None = None
    ) -> None:
        # The demo goes through the same service as every other import: a re-run skips what is already there.
        try:
            report = items_import(project=project, batch_name=batch_name, source=source, filename=filename, kind=kind)
        except ImportRejected as exc:  # a broken demo file is a bug in demo/data, say where
            lines = "; ".join(f"line {e['line']}: {e['reason']}" for e in exc.report.errors[:5])
            raise CommandError(f"The demo data was rejected by the import: {lines}") from exc
        self.stdout.write(report.summary())
        total = sum(report.strata.values()) or 1
        mix = ", ".join(f"{name} {count} ({count / total:.0%})" for name, count in report.strata.items())
        self.stdout.write(f"Stratum mix: {mix}")
        for warning in report.warnings:
            self.stdout.write(self.style.WARNING(f"Warning: {warning}"))

    @transaction.atomic
    def _history(self, project: Project) -> None:
        """The earlier batch, judged by the simulated annotators and closed; made once, in one transaction.

        Votes go straight into the tables (a live session would time each judgment at a few milliseconds), with
        what judgment_submit would store: canonical choices, too_fast, gold marks, counts within overlap + extra,
        sessions' task counts. Closing goes through batch_close, so rewards snapshots it as any closed batch.
        """
        existing = Batch.objects.filter(project=project, name=HISTORY_BATCH_NAME).first()
        if existing is not None:
            self.stdout.write(
                f"Batch {HISTORY_BATCH_NAME!r} is already there ({existing.judgments.count()} judgments)."
            )
            return
        lines = history_lines()
        source = io.BytesIO("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode())
        self._import_items(project, HISTORY_BATCH_NAME, source, HISTORY_FILENAME)
        batch = Batch.objects.select_related("criteria_version").get(project=project, name=HISTORY_BATCH_NAME)
        open_batch = Batch.objects.get(project=project, name=BATCH_NAME)
        start = open_batch.created_at - timedelta(days=HISTORY_DAYS_EARLIER)
        Batch.objects.filter(pk=batch.pk).update(created_at=start)

        User = get_user_model()
        users = {}
        for sim in SIM_ANNOTATORS:
            user, created = User.objects.get_or_create(
                username=sim.username, defaults={"email": f"{sim.username}@example.com"}
            )
            if created:
                user.set_unusable_password()  # simulated people: nobody logs in as them
                user.save(update_fields=["password"])
            member_add(project=project, username=sim.username, role=Role.ANNOTATOR)
            users[sim.username] = user

        votes, extras = plan_votes(
            lines,
            overlap=project.overlap,
            max_overlap=project.max_overlap,
            min_agreement=project.min_agreement,
            tie_rule=batch.criteria_version.tie_rule,
        )
        items = {i.external_id: i for i in Item.objects.filter(batch=batch).only("pk", "external_id", "gold")}
        self._write_votes(project, batch, start, users, items, votes)
        for item in items.values():
            item.extra_judgments = extras.get(item.external_id, 0)
            item.judgment_count = sum(v.item_id == item.external_id for v in votes)
        Item.objects.bulk_update(items.values(), ["extra_judgments", "judgment_count"])
        batch_close(batch=batch)
        self.stdout.write(
            f"Batch {HISTORY_BATCH_NAME!r}: {len(votes)} judgments by {len(users)} simulated annotators, closed."
        )

    def _write_votes(self, project, batch, start, users, items, votes) -> None:
        # Each simulated annotator works through their share in one session, on one of the first three days.
        per_user: dict[str, list] = {name: [] for name in users}
        for vote in votes:
            per_user[vote.annotator].append(vote)
        sessions, assignments, judgments, stamps = [], [], [], []
        for n, (name, mine) in enumerate(per_user.items()):
            began = start + timedelta(days=n % 3, hours=9 + n, minutes=17 * n)
            session = AnnotationSession(
                project=project,
                annotator=users[name],
                started_at=began,
                expires_at=began + timedelta(minutes=project.session_minutes),
                max_tasks=max(project.session_max_tasks, len(mine)),
                tasks_done=len(mine),
            )
            sessions.append(session)
            at = began
            for vote in mine:
                item = items[vote.item_id]
                leased = at + timedelta(seconds=4)
                at = leased + timedelta(seconds=vote.seconds)
                assignment = Assignment(
                    session=session,
                    item=item,
                    annotator=users[name],
                    left_is_a=vote.shown_left == "a",
                    leased_at=leased,
                    lease_expires_at=leased + timedelta(minutes=project.lease_minutes),
                    judged_at=at,
                )
                assignments.append(assignment)
                judgments.append(
                    Judgment(
                        assignment=assignment,
                        item=item,
                        batch=batch,
                        annotator=users[name],
                        choice=vote.choice,
                        shown_left=vote.shown_left,
                        seconds=vote.seconds,
                        too_fast=vote.seconds < project.min_seconds_per_judgment,
                        is_gold=bool(item.gold),
                        gold_correct=(vote.choice == item.gold) if item.gold else None,
                    )
                )
                stamps.append(at)
            session.ended_at = at
        AnnotationSession.objects.bulk_create(sessions)
        Assignment.objects.bulk_create(assignments)
        Judgment.objects.bulk_create(judgments)
        # created_at is set to now on insert; the history happened days ago.
        for judgment, at in zip(judgments, stamps, strict=True):
            judgment.created_at = at
        Judgment.objects.bulk_update(judgments, ["created_at"], batch_size=500)

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
            f'Project "{project.name}": {items} items ({gold} gold); "{BATCH_NAME}" is open to annotate, '
            f'"{HISTORY_BATCH_NAME}" is judged and closed (lead dashboard, dataset snapshots); '
            f'"{DEMONSTRATION_BATCH_NAME}" holds prompts to answer in writing ("Write demonstrations").',
            "",
            f"  {'user':<{width_user}}  {'role':<{width_role}}  password",
            f"  {'-' * width_user}  {'-' * width_role}  {'-' * 16}",
            *(f"  {u:<{width_user}}  {r:<{width_role}}  {p}" for u, r, p in rows),
            "",
            f"Log in at {url}  (admin site: {url.rstrip('/')}/admin/)",
            "Passwords are new on every run of seed_demo.",
        ]
        self.stdout.write("\n".join(out))
