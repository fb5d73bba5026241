"""`manage.py make_eval_batch --candidate RUN_ID --baseline RUN_ID [--name NAME] [--criteria-version N]`: an evaluation
batch of two generation runs' responses to one evaluation set; prints the evaluation batch's id on stdout."""

from django.core.management.base import BaseCommand, CommandError

from annotation.models import CriteriaVersion
from core.errors import TandemError
from evaluation.services.eval_batches import eval_batch_make, sampled_for_run


class Command(BaseCommand):
    help = (
        "Make an evaluation batch: the candidate generation run's responses against the baseline's, one item per "
        "prompt of their evaluation set, blinded and served to the project's annotators at once. Prints the "
        "evaluation batch's id on stdout (the annotation batch's id and name on stderr)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--candidate", required=True, type=int, metavar="RUN_ID", help="The candidate's generate run."
        )
        parser.add_argument(
            "--baseline", required=True, type=int, metavar="RUN_ID", help="The baseline's generate run."
        )
        parser.add_argument("--name", default=None, help="The batch's name (default eval-<set>-v<version>-<n>).")
        parser.add_argument(
            "--criteria-version", type=int, default=None, metavar="N", help="Default: the project's current one."
        )

    def handle(self, *args, candidate: int, baseline: int, name, criteria_version, **options):
        try:
            candidate_run = sampled_for_run(run_id=candidate)
            baseline_run = sampled_for_run(run_id=baseline)
            criteria = None
            if criteria_version is not None:
                project = candidate_run.eval_set.project
                criteria = CriteriaVersion.objects.filter(project=project, number=criteria_version).first()
                if criteria is None:
                    raise CommandError(f"Project {project.name} has no criteria version {criteria_version}.")
            evaluation = eval_batch_make(
                candidate=candidate_run, baseline=baseline_run, name=name, criteria_version=criteria
            )
        except TandemError as exc:
            raise CommandError(f"{exc.detail} ({exc.code})") from exc
        batch = evaluation.batch
        self.stderr.write(
            f"Evaluation batch {evaluation.pk}: batch {batch.pk} {batch.name!r} in {batch.project.name}, "
            f"{evaluation.items.count()} item(s), run {candidate} (candidate) against run {baseline} (baseline)."
        )
        self.stdout.write(str(evaluation.pk))
