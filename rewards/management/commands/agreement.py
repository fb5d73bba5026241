"""`manage.py agreement --project NAME [--json]`: snapshot every batch of a project now and print the figures."""

import json

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from rewards.selectors import snapshot_summary
from rewards.services.snapshots import snapshot_all_for_project


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


class Command(BaseCommand):
    help = "Compute agreement snapshots for every batch of a project now; print kappas, alpha, gold accuracy, flags."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="The project's name.")
        parser.add_argument("--json", action="store_true", help="Print JSON instead of tables.")

    def handle(self, *args, project: str, json: bool, **options):
        found = Project.objects.filter(name=project).first()
        if found is None:
            raise CommandError(f"No project named {project!r}.")
        snapshots = snapshot_all_for_project(project_id=found.pk)
        batches = [snapshot_summary(batch=s.batch, snapshot=s) for s in snapshots]
        if json:
            self.stdout.write(_dumps({"project": found.name, "project_id": found.pk, "batches": batches}))
        else:
            self._tables(found, batches)

    def _tables(self, project: Project, batches: list[dict]) -> None:
        out = self.stdout.write
        out(f"Project {project.name}: {len(batches)} batch(es)\n")
        for b in batches:
            out(
                f"Batch {b['batch']} ({b['status']}, criteria v{b['criteria_version']}): {b['judgments']} judgments,"
                f" {b['items']} items, {b['annotator_count']} annotators"
            )
            out(
                f"  kappa {_num(b['cohen_kappa'])}  Fleiss {_num(b['fleiss_kappa'])}"
                f"  alpha {_num(b['krippendorff_alpha'])}  agreement {_num(b['agreement'])}"
                f"  gold accuracy {_num(b['gold_accuracy'])} (n={b['gold_judgments']})"
            )
            for flag in b["flags"]:
                out(f"  [{flag['level']}] {flag['message']}")
            header = f"  {'annotator':<20} {'n':>6} {'kappa':>6} {'gold':>6} {'left':>6} {'longer':>6} {'tie':>6} {'med s':>7} {'fast':>5}  flags"
            out(header)
            for a in b["annotators"]:
                codes = ",".join(f"{f['code']}({f['level']})" for f in a["flags"]) or "-"
                out(
                    f"  {a['username'][:20]:<20} {a['judgments']:>6} {_num(a['consensus_kappa']):>6}"
                    f" {_num(a['gold_accuracy']):>6} {_num(a['left_share']):>6} {_num(a['longer_share']):>6}"
                    f" {_num(a['tie_rate']):>6} {_num(a['median_seconds'], 1):>7} {a['too_fast']:>5}  {codes}"
                )
            out("")


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2)
