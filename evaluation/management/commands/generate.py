"""`manage.py generate --eval-set ID --model checkpoint:ID|run:ID|FOLDER [--set key=value ...] [--allow-overlap]`:
queue a generate run of the model on the evaluation set (validated first, every problem at once); prints its id."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.errors import TandemError
from evaluation.errors import EvalSetOverlap
from evaluation.selectors import eval_set_get
from trainer.configs import ConfigError, set_options_check


def _lines(errors: dict[str, str]) -> str:
    return "\n".join(f"  {field}: {message}" for field, message in sorted(errors.items()))


class Command(BaseCommand):
    help = "Sample a model (checkpoint:ID, run:ID or a base folder) on an evaluation set as a generate run."

    def add_arguments(self, parser):
        parser.add_argument("--eval-set", required=True, type=int, help="Evaluation set id.")
        parser.add_argument(
            "--model", required=True, help="checkpoint:ID, run:ID (a finished run's final checkpoint) or a folder."
        )
        parser.add_argument(
            "--set", dest="set_options", action="append", default=[], metavar="KEY=VALUE", help="A generate setting."
        )
        parser.add_argument(
            "--allow-overlap",
            action="store_true",
            help="Generate even if prompts of the set appear in the model's training data (recorded).",
        )
        parser.add_argument("--user", help="Username the run is started as (an ML engineer of the project).")

    def handle(self, *args, **options):
        from evaluation.services.generations import generation_start

        eval_set = eval_set_get(eval_set_id=options["eval_set"])
        if eval_set is None:
            raise CommandError(f"No evaluation set {options['eval_set']}.")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}.")
        config, input_errors = set_options_check(options["set_options"], kind="generate")
        try:
            sampled = generation_start(
                eval_set=eval_set,
                model=options["model"],
                config=config,
                created_by=user,
                allow_overlap=options["allow_overlap"],
                input_errors=input_errors,
            )
        except ConfigError as exc:
            raise CommandError(f"Invalid configuration; nothing was queued:\n{_lines(exc.errors)}") from exc
        except EvalSetOverlap as exc:
            ids = exc.extra.get("ids", [])
            raise CommandError(
                f"{exc.detail} Nothing was queued (--allow-overlap to generate anyway).\nOverlapping ids: "
                + ", ".join(ids)
            ) from exc
        except TandemError as exc:
            raise CommandError(f"{exc.detail} Nothing was queued.") from exc
        overlap = f"; overlap allowed on {len(sampled.overlap_ids)} prompt(s)" if sampled.overlap_ids else ""
        self.stdout.write(
            f"Run {sampled.run_id} queued: generate from {sampled.label} on {eval_set} "
            f"({eval_set.prompt_count} prompts){overlap}."
        )
