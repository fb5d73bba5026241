"""`manage.py start_run --kind KIND --snapshot ID --base-model MODEL [--reward-model RUN] [--set k=v ...] [--wait]`.

Validates and queues a run through the same service as the API and the admin (every problem listed at once, by
field); prints the run's id. With --wait it
follows the run, printing its progress, and exits non-zero unless it succeeded.
"""

import json
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.errors import TandemError
from rewards.errors import DatasetTampered
from rewards.models import DatasetSnapshot
from trainer.configs import TRAINING_KINDS, ConfigError, set_options_check
from trainer.models import FINAL_STATUSES, Status, TrainingRun
from trainer.services.runs import run_start


def _lines(errors: dict[str, str]) -> str:
    # --reward-model is the option's name here; the service names the problem as the API does.
    names = {"reward_model_run": "reward_model_run (--reward-model)"}
    return "\n".join(f"  {names.get(field, field)}: {message}" for field, message in sorted(errors.items()))


class Command(BaseCommand):
    help = "Start a training run on a dataset snapshot (validated before it is queued); --wait follows it to the end."

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, choices=TRAINING_KINDS)
        parser.add_argument("--snapshot", required=True, type=int, help="Dataset snapshot id.")
        parser.add_argument(
            "--base-model",
            required=True,
            help="run:ID (a succeeded run of the project), a folder under TANDEM_MODEL_ROOTS (absolute, or relative to "
            "a root or to the repository), or an org/name hub id where TANDEM_ALLOW_HUB_MODELS allows it.",
        )
        parser.add_argument("--reward-model", type=int, help="PPO/RLOO: id of a succeeded reward-model run.")
        parser.add_argument(
            "--set", dest="set_options", action="append", default=[], metavar="KEY=VALUE", help="A config setting."
        )
        parser.add_argument(
            "--user", help="Username the run is started as (must be an ML engineer of the project); default: none."
        )
        parser.add_argument("--wait", action="store_true", help="Follow the run until it ends.")
        parser.add_argument("--poll", type=float, default=2.0, help="Seconds between progress lines with --wait.")

    def handle(self, *args, **options):
        kind = options["kind"]
        snapshot = DatasetSnapshot.objects.filter(pk=options["snapshot"]).first()
        if snapshot is None:
            raise CommandError(f"No dataset snapshot {options['snapshot']}.")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}.")
        # --set lines that cannot be read and a --reward-model that names no run are reported by run_start with
        # every other problem of the run, at once.
        config, input_errors = set_options_check(options["set_options"], kind=kind)
        config["base_model"] = options["base_model"]
        reward_model = None
        if options["reward_model"] is not None:
            reward_model = TrainingRun.objects.filter(pk=options["reward_model"]).first()
            if reward_model is None:
                input_errors["reward_model_run"] = f"No run {options['reward_model']}."
        try:
            run = run_start(
                kind=kind,
                snapshot=snapshot,
                config=config,
                reward_model=reward_model,
                created_by=user,
                input_errors=input_errors,
            )
        except ConfigError as exc:
            raise CommandError(f"Invalid configuration; nothing was queued:\n{_lines(exc.errors)}") from exc
        except DatasetTampered as exc:
            others = exc.extra.get("errors")
            more = f"\nAlso wrong:\n{_lines(others)}" if others else ""
            raise CommandError(f"{exc.detail} Nothing was queued.{more}") from exc
        except TandemError as exc:
            raise CommandError(f"{exc.detail} Nothing was queued.") from exc
        self.stdout.write(f"Run {run.pk} queued ({run.get_kind_display()} on dataset snapshot {snapshot.pk}).")
        if options["wait"]:
            self._follow(run, poll=max(0.1, options["poll"]))

    def _follow(self, run: TrainingRun, *, poll: float) -> None:
        last = None
        while True:
            run.refresh_from_db()
            line = f"run {run.pk}: {run.status}"
            if run.total_steps:
                line += f" step {run.step}/{run.total_steps} ({run.step / run.total_steps:.0%})"
            if run.status == Status.RUNNING and run.eta:
                from django.utils import timezone

                line += f", about {max(0, round((run.eta - timezone.now()).total_seconds()))} s left"
            if line != last:
                self.stdout.write(line)
                last = line
            if run.status in FINAL_STATUSES:
                break
            time.sleep(poll)
        if run.status != Status.SUCCEEDED:
            raise CommandError(f"Run {run.pk} {run.status}: {run.error or 'no error recorded'}")
        self.stdout.write(f"Evaluation: {json.dumps(run.evaluation, sort_keys=True)}")
        self.stdout.write(f"Checkpoint: {run.output_dir}/checkpoint (lineage.json beside it)")
