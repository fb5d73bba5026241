"""`manage.py export_pairs --project NAME [--sources S ...] [--batches B ...] --out FILE`: make a dataset snapshot,
copy its train split to FILE and its validation split beside it, print the snapshot's id."""

import shutil
from collections.abc import Callable
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Batch, Project
from core.errors import TandemError
from rewards.models import DatasetSnapshot
from rewards.selectors import dataset_files
from rewards.services.datasets import dataset_create, dataset_verify


def validation_path(out: Path) -> Path:
    """pairs.jsonl -> pairs.validation.jsonl; pairs -> pairs.validation.jsonl."""
    stem = out.name.removesuffix(".jsonl")
    return out.with_name(f"{stem}.validation.jsonl")


def project_and_batches(project: str, batches: list[str] | None) -> tuple[Project, list[int] | None]:
    """The project named and the ids of the batches named, in that order (None when none is named), or CommandError
    for an unknown project or batch name. Shared by export_pairs and export_sft."""
    found = Project.objects.filter(name=project).first()
    if found is None:
        raise CommandError(f"No project named {project!r}.")
    if not batches:
        return found, None
    by_name = dict(Batch.objects.filter(project=found, name__in=batches).values_list("name", "pk"))
    missing = [name for name in batches if name not in by_name]
    if missing:
        raise CommandError(f"Project {found.name} has no batch named {', '.join(map(repr, missing))}.")
    return found, [by_name[name] for name in batches]


def snapshot_to_files(create: Callable[[], DatasetSnapshot], out: Path) -> tuple[DatasetSnapshot, str]:
    """Make a snapshot with `create` (a TandemError becomes a CommandError), check its train and validation files and
    copy them to `out` and validation_path(out). Returns the snapshot and its excluded reasons as text."""
    if out.is_dir():
        raise CommandError(f"--out {out} is a folder: give a file name.")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        snapshot = create()
    except TandemError as exc:
        raise CommandError(exc.detail) from exc
    files = dataset_files(snapshot=snapshot)
    dataset_verify(snapshot=snapshot, names=["train", "validation"])
    # Copies, not links: editing FILE must not change the snapshot.
    shutil.copyfile(files["train"], out)
    shutil.copyfile(files["validation"], validation_path(out))
    return snapshot, ", ".join(f"{n} {reason}" for reason, n in snapshot.excluded_reasons.items()) or "none"


class Command(BaseCommand):
    help = (
        "Make an immutable dataset snapshot of a project's closed batches and labelled sources (TRL preference "
        "format, split by prompt into train and validation; each row's source is human or the source's name) and "
        "print its id on stdout. FILE gets a copy of the train split and "
        "FILE's name with .validation.jsonl (pairs.jsonl -> pairs.validation.jsonl) the validation split: "
        "datasets.load_dataset('json', data_files={'train': FILE, 'validation': ...}). The snapshot itself, with "
        "excluded.jsonl and manifest.json, stays under ARTIFACTS_DIR/datasets/<id>/."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="The project's name.")
        parser.add_argument(
            "--batches",
            nargs="+",
            metavar="BATCH",
            help="Names of closed batches (default: every closed batch, or none when --sources is given).",
        )
        parser.add_argument(
            "--sources",
            nargs="+",
            metavar="SOURCE",
            help="Names of labelled sources (imported with import_labelled) to take beside the batches.",
        )
        parser.add_argument("--weighting", choices=DatasetSnapshot.Weighting.values, default="vote")
        parser.add_argument("--validation-fraction", type=float, default=0.1, help="Share of prompts (0 to 0.5).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the prompt-grouped split.")
        parser.add_argument(
            "--include-evaluation",
            action="store_true",
            help="Also take evaluation batches (left out of 'every closed batch', refused when named, without it); "
            "the manifest then lists them.",
        )
        parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="Where the train split goes.")

    def handle(
        self,
        *args,
        project: str,
        batches,
        weighting,
        validation_fraction,
        seed,
        out: Path,
        include_evaluation,
        sources=None,
        **options,
    ):
        found, batch_ids = project_and_batches(project, batches)
        snapshot, reasons = snapshot_to_files(
            lambda: dataset_create(
                project=found,
                batch_ids=batch_ids,
                weighting=weighting,
                validation_fraction=validation_fraction,
                seed=seed,
                include_evaluation=include_evaluation,
                sources=sources,
            ),
            out,
        )
        taken = f" with sources {', '.join(s['name'] for s in snapshot.sources)}" if snapshot.sources else ""
        self.stderr.write(
            f"Dataset snapshot {snapshot.pk} ({snapshot.prompt_format}{taken}): {snapshot.train_count} train pairs -> "
            f"{out}, "
            f"{snapshot.validation_count} validation pairs -> {validation_path(out)}; "
            f"excluded {snapshot.excluded_count} ({reasons}); files in {dataset_files(snapshot=snapshot)['train'].parent}"
        )
        self.stdout.write(str(snapshot.pk))
