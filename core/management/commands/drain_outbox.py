"""Send the outbox's due messages now (what beat's core.drain_outbox does), and say what happened."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from core.models import OutboxMessage
from core.outbox import outbox_drain


class Command(BaseCommand):
    help = "Send the task outbox's due messages to the broker; retries back off, so --all ignores the back-off."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="At most this many messages.")
        parser.add_argument(
            "--all", dest="everything", action="store_true", help="Also the pending messages not due yet."
        )

    def handle(self, *args, limit, everything, **options):
        if everything:
            pending = OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING)
            pending.update(next_attempt_at=timezone.now())
        report = outbox_drain(limit=limit)
        left = OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING).count()
        self.stdout.write(
            f"sent {len(report.sent)}, will retry {len(report.retrying)}, gave up {len(report.gave_up)}; {left} pending"
        )
