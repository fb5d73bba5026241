"""python manage.py import_labelled --project NAME --source NAME [--format F] FILE"""

import json

from django.core.management.base import BaseCommand, CommandError

from annotation.labelled_format import FORMATS
from annotation.models import Project
from annotation.services import ImportRejected, project_create
from annotation.services.labelled import excluded_warnings, labelled_import


class Command(BaseCommand):
    help = (
        "Import already-labelled data (HH-RLHF pairs, items with a preferred answer, scored responses, "
        "demonstrations) as a labelled source: served to nobody, never counted in agreement. A file with any bad "
        "line imports nothing. See docs/LABELLED_DATA.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--project", required=True, help="Project name; made with defaults if missing.")
        parser.add_argument("--source", required=True, help="The labelled source's name; made if missing.")
        parser.add_argument(
            "--format", choices=FORMATS, help="The file's format; told from its first line if left out."
        )
        parser.add_argument("--json", action="store_true", help="Print the whole report as JSON.")

    def handle(self, *args, **options):
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            project = project_create(name=options["project"])
            self.stdout.write(f"Created project {project.name!r}.")
        try:
            with open(options["file"], "rb") as source:
                report = labelled_import(
                    project=project,
                    source_name=options["source"],
                    file=source,
                    filename=options["file"],
                    format=options["format"],
                )
        except FileNotFoundError as exc:
            raise CommandError(f"No such file: {options['file']}") from exc
        except ImportRejected as exc:
            if options["json"]:
                self.stdout.write(json.dumps(exc.report.as_dict(), indent=2))
            for error in exc.report.errors:
                # No line: an error of the file as a whole (too large, another format, not a source).
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
        for excluded in report.excluded:
            self.stdout.write(f"line {excluded['line']} excluded: {excluded['reason']}")
        hidden = report.excluded_count - len(report.excluded)
        if hidden:
            self.stdout.write(f"... and {hidden} more excluded line(s)")
        listed = set(excluded_warnings(report))  # the excluded lines, as the stored record names them
        for warning in report.warnings:
            if warning not in listed:
                self.stdout.write(self.style.WARNING(f"Warning: {warning}"))
