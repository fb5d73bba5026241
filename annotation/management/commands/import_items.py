"""python manage.py import_items --project NAME --batch NAME [--kind comparison|demonstration] FILE"""

import json

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from annotation.services import ImportRejected, items_import, project_create
from annotation.services.imports import IMPORT_KINDS


class Command(BaseCommand):
    help = "Import a JSONL (or .jsonl.gz) file of items into a batch; a file with any bad line imports nothing."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--project", required=True, help="Project name; made with defaults if missing.")
        parser.add_argument("--batch", required=True, help="Batch name; made if missing.")
        parser.add_argument("--keep-hh-gold", action="store_true", help="Keep HH-RLHF's chosen side as a gold answer.")
        parser.add_argument(
            "--kind",
            choices=IMPORT_KINDS,
            help="The batch's kind when the import makes it: comparison (prompt and two responses, the default) or "
            "demonstration (prompts only: annotators write the response). An existing batch of another kind is "
            "refused. Left out: the existing batch's kind.",
        )
        parser.add_argument("--json", action="store_true", help="Print the whole report as JSON.")

    def handle(self, *args, **options):
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            project = project_create(name=options["project"])
            self.stdout.write(f"Created project {project.name!r}.")
        try:
            with open(options["file"], "rb") as source:
                report = items_import(
                    project=project,
                    batch_name=options["batch"],
                    source=source,
                    filename=options["file"],
                    keep_hh_gold=options["keep_hh_gold"],
                    kind=options["kind"],
                )
        except FileNotFoundError as exc:
            raise CommandError(f"No such file: {options['file']}") from exc
        except ImportRejected as exc:
            if options["json"]:
                self.stdout.write(json.dumps(exc.report.as_dict(), indent=2))
            for error in exc.report.errors:
                # No line: an error of the file as a whole (too large, closed batch, corrupt gzip).
                self.stderr.write(
                    error["reason"] if error["line"] is None else f"line {error['line']}: {error['reason']}"
                )
            hidden = exc.report.error_count - len(exc.report.errors)
            if hidden:
                self.stderr.write(f"... and {hidden} more bad line(s)")
            raise CommandError(exc.report.summary()) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        self.stdout.write(self.style.SUCCESS(report.summary()))
        mix = ", ".join(
            f"{name} {count} ({count / max(1, sum(report.strata.values())):.0%})"
            for name, count in report.strata.items()
        )
        self.stdout.write(f"Stratum mix: {mix or 'none'}")
        for warning in report.warnings:
            self.stdout.write(self.style.WARNING(f"Warning: {warning}"))
