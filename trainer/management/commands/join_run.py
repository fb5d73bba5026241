"""`manage.py join_run RUN_ID --machine-rank K`: machine K (1 or more) of a run on several machines.

The run's `num_machines`, `main_process_ip` and `main_process_port` say where machine 0 is: the worker that took the
run launches its ranks there and supervises the run. On each other machine, with the same code, settings, database
and a shared artifacts folder, this command launches that machine's ranks and stays with them until the run ends
(docs/SCALING.md, "Several machines"). It waits for a queued run to start; it exits 0 when the run succeeded.
"""

from django.core.management.base import BaseCommand, CommandError

from trainer.errors import RunNotJoinable
from trainer.models import Status, TrainingRun


class Command(BaseCommand):
    help = "Launch this machine's processes of a run on several machines (machine 0 is the worker that took it)."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int)
        parser.add_argument("--machine-rank", type=int, required=True, help="This machine's rank: 1 to num_machines-1.")
        parser.add_argument(
            "--wait-seconds", type=float, default=3600.0, help="How long to wait for a queued run to start (3600)."
        )

    def handle(self, *args, run_id: int, machine_rank: int, wait_seconds: float, **options):
        from trainer.launch.supervisor import join

        if not TrainingRun.objects.filter(pk=run_id).exists():
            raise CommandError(f"No run {run_id}.")
        try:
            status = join(run_id=run_id, machine_rank=machine_rank, wait_seconds=wait_seconds, say=self.stdout.write)
        except RunNotJoinable as exc:
            raise CommandError(exc.detail) from exc
        if status != Status.SUCCEEDED:
            error = TrainingRun.objects.filter(pk=run_id).values_list("error", flat=True).get()
            raise CommandError(f"Run {run_id} is {status}. {error}".strip())
        self.stdout.write(f"Run {run_id} succeeded; machine {machine_rank}'s part is done.")
