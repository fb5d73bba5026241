"""`manage.py import_eval_set --project NAME --name NAME FILE [--user USERNAME]`: a JSONL (or .jsonl.gz) file of
prompts as the next version of a project's evaluation set, through the same service as the API and the admin."""

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from core.errors import TandemError
from evaluation.errors import EvalSetInvalid
from evaluation.services.eval_sets import eval_set_import


class Command(BaseCommand):
    help = "Import an evaluation prompt set (JSONL; '-' reads stdin); a file with any bad line imports nothing."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--project", required=True, help="Project name.")
        parser.add_argument("--name", required=True, help="The set's name: a new version if it exists.")
        parser.add_argument("--user", help="Username the set is imported as (a lead or ML engineer of the project).")

    def handle(self, *args, **options):
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(f"No project named {options['project']!r}.")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}.")
        path = options["file"]
        try:
            if path == "-":
                eval_set = eval_set_import(
                    project=project, name=options["name"], file=sys.stdin.buffer, created_by=user, filename="stdin"
                )
            else:
                with open(path, "rb") as source:
                    eval_set = eval_set_import(
                        project=project, name=options["name"], file=source, created_by=user, filename=path
                    )
        except FileNotFoundError as exc:
            raise CommandError(f"No such file: {path}") from exc
        except EvalSetInvalid as exc:
            for error in exc.extra.get("errors", []):
                self.stderr.write(
                    error["reason"] if error["line"] is None else f"line {error['line']}: {error['reason']}"
                )
            hidden = exc.extra.get("error_count", 0) - len(exc.extra.get("errors", []))
            if hidden > 0:
                self.stderr.write(f"... and {hidden} more bad line(s)")
            raise CommandError(exc.detail) from exc
        except TandemError as exc:
            raise CommandError(f"{exc.detail} Nothing was imported.") from exc
        strata = ", ".join(f"{name} {count}" for name, count in eval_set.strata.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported evaluation set {eval_set.pk}: {eval_set} of {project.name}, {eval_set.prompt_count} "
                f"prompt(s) ({strata}); sha256 {eval_set.sha256}."
            )
        )
