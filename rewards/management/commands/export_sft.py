"""`manage.py export_sft --project NAME [--batches B ...] [--sources S ...] --out FILE`: make an SFT snapshot of
accepted demonstrations, copy its train split to FILE and its validation split beside it, print the snapshot's id."""

from pathlib import Path

from django.core.management.base import BaseCommand

from rewards.management.commands.export_pairs import project_and_batches, snapshot_to_files, validation_path
from rewards.selectors import dataset_files
from rewards.services.sft_datasets import sft_dataset_create


class Command(BaseCommand):
    help = (
        "Make an immutable SFT snapshot of a project's accepted demonstrations (TRL's conversational format: "
        "messages, the answer last; split by prompt into train and validation) and print its id on stdout. FILE "
        "gets a copy of the train split and FILE's name with .validation.jsonl the validation split; the snapshot, "
        "with excluded.jsonl and manifest.json (writers, reviewers, sources), stays under ARTIFACTS_DIR/datasets/<id>/."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="The project's name.")
        parser.add_argument(
            "--batches",
            nargs="+",
            metavar="BATCH",
            help="Names of demonstration batches (default: every demonstration batch, or none when --sources is "
            "given; with neither, every demonstrations source too).",
        )
        parser.add_argument(
            "--sources", nargs="+", metavar="SOURCE", help="Names of labelled sources of demonstrations."
        )
        parser.add_argument("--validation-fraction", type=float, default=0.1, help="Share of prompts (0 to 0.5).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the prompt-grouped split.")
        parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="Where the train split goes.")

    def handle(self, *args, project: str, batches, sources, validation_fraction, seed, out: Path, **options):
        found, batch_ids = project_and_batches(project, batches)
        snapshot, reasons = snapshot_to_files(
            lambda: sft_dataset_create(
                project=found,
                batches=batch_ids,
                sources=sources,
                validation_fraction=validation_fraction,
                seed=seed,
            ),
            out,
        )
        self.stderr.write(
            f"SFT snapshot {snapshot.pk}: {snapshot.train_count} train demonstrations -> {out}, "
            f"{snapshot.validation_count} validation demonstrations -> {validation_path(out)}; "
            f"excluded {snapshot.excluded_count} ({reasons}); files in {dataset_files(snapshot=snapshot)['train'].parent}"
        )
        self.stdout.write(str(snapshot.pk))
