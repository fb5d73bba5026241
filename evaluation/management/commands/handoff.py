"""`manage.py handoff --release ID [--with-weights]`: (re)build a release's hand-off package now, in this process;
prints its path on stdout and its sha256 on stderr."""

from django.core.management.base import BaseCommand, CommandError

from core.errors import TandemError
from evaluation.models import Release
from evaluation.services.handoff import handoff_build


class Command(BaseCommand):
    help = (
        "Build a release's hand-off package (criteria, sampling, guidelines, agreement, datasets, reward models, "
        "runs, evaluation evidence, the gate decision, the checkpoint's manifest) as a .tar.gz under "
        "ARTIFACTS_DIR/releases/<id>/, replacing the one before. May load the lineage's reward models (torch)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--release", required=True, type=int, metavar="ID", help="The release.")
        parser.add_argument(
            "--with-weights", action="store_true", help="Copy the checkpoint's files in (default: referenced)."
        )

    def handle(self, *args, release: int, with_weights: bool, **options):
        row = Release.objects.filter(pk=release).first()
        if row is None:
            raise CommandError(f"No release {release}.")
        try:
            path = handoff_build(release=row, with_weights=with_weights)
        except TandemError as exc:
            raise CommandError(f"{exc.detail} ({exc.code})") from exc
        self.stderr.write(f"Release {row.pk}: package sha256 {row.package_sha256}")
        self.stdout.write(str(path))
