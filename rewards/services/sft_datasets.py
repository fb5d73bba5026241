"""SFT snapshots: accepted demonstrations written once, streaming, as TRL conversational files with a prompt-grouped
train/validation split, the rows left out with their reasons, a manifest and sha256s. The directory layout,
verification (rewards.services.datasets.dataset_verify) and immutability are those of preference snapshots; the row
is a DatasetSnapshot of kind "sft".

Files, in ARTIFACTS_DIR/datasets/<id>/:
- train.jsonl, validation.jsonl: one accepted demonstration a line, TRL's conversational format with the answer
  last, as SFTTrainer takes it:
  {"messages": [{"role": "user", "content": "..."}, ..., {"role": "assistant", "content": "<final text>"}],
   "item_id": "...", "source": "human" | "<labelled source name>", "demonstration_id": 123, "batch": "..."}
  A text prompt becomes one user message; an item's messages are kept as they are and the answer appended. The
  answer is Demonstration.final_text: the reviewer's edit when accepted with edits, else the text as written.
- excluded.jsonl: every demonstration (or item) left out, with its reason: "pending" (not reviewed yet),
  "rejected" (with the reviewer's reason), "withdrawn" (its item was withdrawn), "unwritten" (an item of a
  demonstration batch nobody wrote for).
- manifest.json: kind "sft", the batches, the sources (format and imported files with sha256s), the counts, the
  excluded reasons, "writers" and "reviewers" (username -> demonstrations in the snapshot), the files' sha256s.

Split: as for preference pairs, by the normalised prompt (the messages before the answer) hashed with the seed, so a
prompt written for twice is on one side only; a side left empty gets the prompt nearest the threshold.
"""

import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.models import Batch, Demonstration, Project
from rewards.errors import DatasetError, NoBatches, NoDemonstrations, NotDemonstrationBatch, UnknownBatch
from rewards.models import DatasetSnapshot
from rewards.selectors import DATASET_FILE_NAMES, demonstration_export_rows, items_without_demonstrations
from rewards.services.datasets import (
    CHUNK_SIZE,
    MANIFEST_FORMAT,
    SEED_MAX,
    VALIDATION_FRACTION_MAX,
    _Extremes,
    _move_group,
    _remove_stale_temporaries,
    _score,
    _Sink,
    _sources_for,
    _write_file,
    prompt_group,
    source_manifest,
)

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def sft_dataset_create(
    *,
    project: Project,
    batches: Sequence[Batch | int] | None = None,
    sources: Sequence[Batch | str] | None = None,
    validation_fraction: float = 0.1,
    seed: int = 0,
    user=None,
    chunk_size: int = CHUNK_SIZE,
) -> DatasetSnapshot:
    """An immutable SFT snapshot of the accepted demonstrations of `batches` (demonstration batches, as rows or ids)
    and `sources` (labelled sources of demonstrations, as rows or names). Both None: every demonstration batch and
    every demonstrations source of the project; sources named and batches None: the sources only.

    Refuses (DatasetError and subclasses, nothing written or stored): a validation fraction outside [0, 0.5], a
    seed out of range, a batch that is not a demonstration batch of this project (not_demonstration_batch,
    unknown_batch), a source that is not a demonstrations-format labelled source of this project (unknown_source,
    source_format), nothing named, no accepted demonstration (no_demonstrations). Open demonstration batches may
    be taken: only accepted demonstrations are, and the snapshot holds them as they were when it was made.
    """
    if not 0.0 <= validation_fraction <= VALIDATION_FRACTION_MAX:
        raise DatasetError(f"The validation fraction must be between 0 and {VALIDATION_FRACTION_MAX}.")
    if not 0 <= seed <= SEED_MAX:
        raise DatasetError(f"The seed must be between 0 and {SEED_MAX}.")
    demonstration_batches, labelled = sft_batches_check(project=project, batches=batches, sources=sources)

    root = Path(settings.ARTIFACTS_DIR) / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(root)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    final: Path | None = None
    try:
        written = _write_demonstrations(
            directory=tmp,
            parts=[(b, "human") for b in demonstration_batches] + [(s, s.name) for s in labelled],
            validation_fraction=validation_fraction,
            seed=seed,
            chunk_size=chunk_size,
        )
        if not written.counts["train"] + written.counts["validation"]:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(written.reasons.items())) or "none written"
            raise NoDemonstrations(f"No accepted demonstrations to export ({reasons}): nothing to export.")
        with transaction.atomic():
            snapshot = DatasetSnapshot.objects.create(
                project=project,
                kind=DatasetSnapshot.Kind.SFT,
                sources=source_manifest(labelled),
                criteria_versions=sorted({b.criteria_version.number for b in demonstration_batches}),
                validation_fraction=validation_fraction,
                seed=seed,
                prompt_format=DatasetSnapshot.PromptFormat.CONVERSATIONAL,
                train_count=written.counts["train"],
                validation_count=written.counts["validation"],
                excluded_count=written.counts["excluded"],
                excluded_reasons=dict(sorted(written.reasons.items())),
                sha256=dict(written.sha256),
                directory="",
                created_by=user,
            )
            snapshot.batches.set([*demonstration_batches, *labelled])
            manifest = _manifest(snapshot=snapshot, batches=demonstration_batches, written=written)
            manifest_bytes = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode()
            _write_file(tmp / DATASET_FILE_NAMES["manifest"], manifest_bytes)
            sha256 = {**written.sha256, "manifest": hashlib.sha256(manifest_bytes).hexdigest()}
            directory = f"datasets/{snapshot.pk}"
            DatasetSnapshot.objects.filter(pk=snapshot.pk).update(directory=directory, sha256=sha256)
            snapshot.directory, snapshot.sha256 = directory, sha256
            final = root / str(snapshot.pk)
            if final.exists():  # left by a rolled-back snapshot that had this id (see dataset_create)
                shutil.rmtree(final)
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if final is not None:
            shutil.rmtree(final, ignore_errors=True)
        raise
    return snapshot


def sft_batches_check(
    *,
    project: Project,
    batches: Sequence[Batch | int] | None = None,
    sources: Sequence[Batch | str] | None = None,
) -> tuple[list[Batch], list[Batch]]:
    """The demonstration batches and demonstrations sources an SFT snapshot of these would take, or the DatasetError
    sft_dataset_create would raise for them: lets a request that queues the snapshot be refused at once."""
    names = [s.name if isinstance(s, Batch) else s for s in sources] if sources is not None else None
    if batches is None and names is None:
        found = list(
            Batch.objects.filter(project=project, kind=Batch.Kind.DEMONSTRATION)
            .select_related("criteria_version")
            .order_by("created_at", "pk")
        )
        labelled = list(
            Batch.objects.filter(
                project=project, kind=Batch.Kind.LABELLED, source_format=Batch.SourceFormat.DEMONSTRATIONS
            ).order_by("created_at", "pk")
        )
        if not found and not labelled:
            raise NoBatches(f"Project {project.name} has no demonstration batch or demonstrations source.")
        return found, labelled
    labelled = _sources_for(project=project, names=names, kind=DatasetSnapshot.Kind.SFT)
    ids = list(dict.fromkeys(b.pk if isinstance(b, Batch) else int(b) for b in batches or ()))
    if not ids and not labelled:
        raise NoBatches("Name at least one demonstration batch or demonstrations source.")
    found = list(
        Batch.objects.filter(project=project, pk__in=ids).select_related("criteria_version").order_by("created_at")
    )
    missing = sorted(set(ids) - {b.pk for b in found})
    if missing:
        raise UnknownBatch(f"Not batches of project {project.name}: {', '.join(map(str, missing))}.", batches=missing)
    wrong = [b for b in found if b.kind != Batch.Kind.DEMONSTRATION]
    if wrong:
        raise NotDemonstrationBatch(
            "An SFT snapshot is made from demonstration batches (labelled sources of demonstrations go in sources); "
            f"not demonstration batches: {', '.join(f'{b.name} ({b.kind})' for b in wrong)}.",
            batches=[b.pk for b in wrong],
        )
    return found, labelled


@dataclass
class _Written:
    counts: dict[str, int]
    reasons: Counter
    sha256: dict[str, str]
    writers: Counter
    reviewers: Counter


def _prompt_of(row: dict) -> list:
    return row["messages"][:-1]


def _write_demonstrations(
    *, directory: Path, parts: list[tuple[Batch, str]], validation_fraction: float, seed: int, chunk_size: int
) -> _Written:
    """Each part's demonstrations (batches oldest first, then the sources in the order named; demonstrations in id
    order) as JSON lines, then the items nobody wrote for."""
    sinks = {name: _Sink(directory / DATASET_FILE_NAMES[name]) for name in ("train", "validation", "excluded")}
    train, validation_sink, excluded = sinks["train"], sinks["validation"], sinks["excluded"]
    reasons: Counter = Counter()
    writers: Counter = Counter()
    reviewers: Counter = Counter()
    extremes = _Extremes()
    seed_bytes = seed.to_bytes(8, "big")
    try:
        for batch, source in parts:
            tail = f',"source":{encode_basestring(source)},"demonstration_id":'
            batch_json = encode_basestring(batch.name)
            for (
                pk,
                item_pk,
                external_id,
                prompt,
                messages,
                withdrawn_at,
                status,
                text,
                edited_text,
                writer,
                reviewer,
            ) in demonstration_export_rows(batch=batch, chunk_size=chunk_size):
                item_id = encode_basestring(external_id or str(item_pk))
                if withdrawn_at is not None or status != Demonstration.Status.ACCEPTED:
                    reason = "withdrawn" if withdrawn_at is not None else status
                    reasons[reason] += 1
                    excluded.add(
                        f'{{"item_id":{item_id},"item_pk":{item_pk}{tail}{pk},"batch":{batch_json},'
                        f'"reason":{encode_basestring(reason)},"writer":{_name(writer)}}}\n'
                    )
                    continue
                if isinstance(messages, str):
                    messages = json.loads(messages)
                conversation = list(messages) if messages else [{"role": "user", "content": prompt}]
                score = _score(seed_bytes, group := prompt_group(conversation))
                validation = score < validation_fraction
                extremes.see(score, group, validation)
                answer = {"role": "assistant", "content": edited_text or text}  # Demonstration.final_text
                (validation_sink if validation else train).add(
                    f'{{"messages":{_ENCODER.encode([*conversation, answer])},"item_id":{item_id}{tail}{pk},'
                    f'"batch":{batch_json}}}\n'
                )
                if writer:
                    writers[writer] += 1
                if reviewer:
                    reviewers[reviewer] += 1
            if batch.kind == Batch.Kind.DEMONSTRATION:
                for item_pk, external_id, withdrawn in items_without_demonstrations(batch=batch):
                    reason = "withdrawn" if withdrawn else "unwritten"
                    reasons[reason] += 1
                    excluded.add(
                        f'{{"item_id":{encode_basestring(external_id or str(item_pk))},"item_pk":{item_pk}{tail}null,'
                        f'"batch":{batch_json},"reason":"{reason}","writer":null}}\n'
                    )
    finally:
        sha256 = {name: sink.close() for name, sink in sinks.items()}
    counts = {name: sink.lines for name, sink in sinks.items()}
    if validation_fraction > 0 and extremes.several_groups:
        if not counts["validation"]:
            counts, sha256 = _move_group(
                directory, extremes.train_low[1], "train", "validation", counts, sha256, prompt_of=_prompt_of
            )
        elif not counts["train"]:
            counts, sha256 = _move_group(
                directory, extremes.validation_high[1], "validation", "train", counts, sha256, prompt_of=_prompt_of
            )
    return _Written(counts=counts, reasons=reasons, sha256=sha256, writers=writers, reviewers=reviewers)


def _name(username: str | None) -> str:
    return encode_basestring(username) if username else "null"


def _manifest(*, snapshot: DatasetSnapshot, batches: Sequence[Batch], written: _Written) -> dict:
    files = {
        name: {"path": DATASET_FILE_NAMES[name], "sha256": written.sha256[name], "lines": written.counts[name]}
        for name in ("train", "validation", "excluded")
    }
    return {
        "format": MANIFEST_FORMAT,
        "kind": snapshot.kind,
        "id": snapshot.pk,
        "project": {"id": snapshot.project_id, "name": snapshot.project.name},
        "created_at": snapshot.created_at.isoformat(),
        "created_by": snapshot.created_by.get_username() if snapshot.created_by else None,
        "validation_fraction": snapshot.validation_fraction,
        "seed": snapshot.seed,
        "prompt_format": snapshot.prompt_format,
        "row": {
            "messages": "the prompt's messages (a text prompt as one user message), then the accepted answer as the "
            "last, assistant, message: the reviewer's edit when accepted with edits, else the text as written",
            "keys": ["messages", "item_id", "source", "demonstration_id", "batch"],
        },
        "split": {
            "grouped_by": "normalised prompt (the messages before the answer; NFKC, case-folded, whitespace collapsed)",
            "rule": "validation when sha256(seed as 8 bytes big-endian + prompt)[:8] / 2**64 < validation_fraction",
        },
        "batches": [
            {
                "id": b.pk,
                "name": b.name,
                "kind": b.kind,
                "status": b.status,
                "criteria_version": b.criteria_version.number,
                "closed_at": b.closed_at.isoformat() if b.closed_at else None,
            }
            for b in batches
        ],
        "sources": snapshot.sources,
        "criteria_versions": snapshot.criteria_versions,
        "counts": snapshot.counts,
        "excluded_reasons": snapshot.excluded_reasons,
        # Who wrote and who reviewed the demonstrations taken (imported ones have neither): username -> count.
        "writers": dict(sorted(written.writers.items())),
        "reviewers": dict(sorted(written.reviewers.items())),
        "files": files,
        "load_with": "datasets.load_dataset('json', data_files={'train': 'train.jsonl', "
        "'validation': 'validation.jsonl'})",
    }
