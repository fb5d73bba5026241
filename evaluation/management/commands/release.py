"""`manage.py release --decision ID --user NAME`: releases the checkpoint an approving gate decision approved, as
that user, through evaluation.services.gate.release (the same rules as the API and the admin: a reviewer of the
project who started no run in the lineage). Prints the release's id on stdout."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.errors import TandemError
from evaluation.models import GateDecision
from evaluation.services.gate import release


class Command(BaseCommand):
    help = (
        "Release the checkpoint of an approving gate decision, as --user (a reviewer of the project). The project's "
        "current release, if any, is superseded. Prints the release's id; refusals exit non-zero with their code."
    )

    def add_arguments(self, parser):
        parser.add_argument("--decision", required=True, type=int, metavar="ID", help="The approving decision.")
        parser.add_argument("--user", required=True, metavar="NAME", help="Who releases (a reviewer).")

    def handle(self, *args, decision: int, user: str, **options):
        found = (
            GateDecision.objects.select_related("evaluation_batch__batch", "evaluation_batch__candidate__run", "policy")
            .filter(pk=decision)
            .first()
        )
        if found is None:
            raise CommandError(f"No gate decision {decision}.")
        account = get_user_model().objects.filter(username=user).first()
        if account is None:
            raise CommandError(f"No user {user!r}.")
        try:
            made = release(decision=found, released_by=account)
        except TandemError as exc:
            raise CommandError(f"{exc.detail} ({exc.code})") from exc
        override = " over a failed criterion (override)" if made.override else ""
        self.stderr.write(
            f"Released checkpoint {made.checkpoint_id} of {made.project.name}{override}: release {made.pk}, "
            f"decision {found.pk} by {found.reviewer.username}."
        )
        self.stdout.write(str(made.pk))
