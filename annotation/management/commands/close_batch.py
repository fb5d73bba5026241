"""python manage.py close_batch --project NAME --batch NAME"""

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Batch
from annotation.services.batches import batch_close


class Command(BaseCommand):
    help = "Close a batch: it serves no more items, and its final agreement snapshot is computed by the worker."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="The project's name.")
        parser.add_argument("--batch", required=True, help="The batch's name in that project.")

    def handle(self, *args, **options):
        batch = Batch.objects.filter(project__name=options["project"], name=options["batch"]).first()
        if batch is None:
            raise CommandError(f"No batch named {options['batch']!r} in a project named {options['project']!r}.")
        batch, closed = batch_close(batch=batch, user=None)
        when = f"{batch.closed_at:%Y-%m-%d %H:%M:%S} UTC" if batch.closed_at else "an unrecorded time"
        if closed:
            self.stdout.write(f"Closed batch {batch.name} of {batch.project.name} at {when}.")
        else:
            self.stdout.write(f"Batch {batch.name} of {batch.project.name} was already closed (at {when}).")
