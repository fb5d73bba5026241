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

import json
from collections import Counter
from collections.abc import Sequence
from json.encoder import encode_basestring
from pathlib import Path

from annotation.models import Batch, Demonstration, Project
from rewards.errors import NoBatches, NoDemonstrations, NotDemonstrationBatch
from rewards.models import DatasetSnapshot
from rewards.selectors import demonstration_export_rows, items_without_demonstrations
from rewards.services.datasets import (
    CHUNK_SIZE,
    _Extremes,
    _score,
    _sources_for,
    _Written,
    balance_sides,
    batches_with_ids,
    check_split_settings,
    manifest_head,
    manifest_tail,
    open_sinks,
    prompt_group,
    store_snapshot,
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
    check_split_settings(validation_fraction=validation_fraction, seed=seed)
    demonstration_batches, labelled = sft_batches_check(project=project, batches=batches, sources=sources)

    def write(directory: Path) -> _Written:
        written = _write_demonstrations(
            directory=directory,
            parts=[(b, "human") for b in demonstration_batches] + [(s, s.name) for s in labelled],
            validation_fraction=validation_fraction,
            seed=seed,
            chunk_size=chunk_size,
        )
        if not written.counts["train"] + written.counts["validation"]:
            raise NoDemonstrations(
                f"No accepted demonstrations to export ({written.reasons_text('none written')}): nothing to export."
            )
        return written

    return store_snapshot(
        project=project,
        kind=DatasetSnapshot.Kind.SFT,
        batches=demonstration_batches,
        sources=labelled,
        write=write,
        manifest=_manifest,
        validation_fraction=validation_fraction,
        seed=seed,
        prompt_format=DatasetSnapshot.PromptFormat.CONVERSATIONAL,
        created_by=user,
    )


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
    found = batches_with_ids(project=project, ids=ids)
    wrong = [b for b in found if b.kind != Batch.Kind.DEMONSTRATION]
    if wrong:
        raise NotDemonstrationBatch(
            "An SFT snapshot is made from demonstration batches (labelled sources of demonstrations go in sources); "
            f"not demonstration batches: {', '.join(f'{b.name} ({b.kind})' for b in wrong)}.",
            batches=[b.pk for b in wrong],
        )
    return found, labelled


def _prompt_of(row: dict) -> list:
    return row["messages"][:-1]


def _write_demonstrations(
    *, directory: Path, parts: list[tuple[Batch, str]], validation_fraction: float, seed: int, chunk_size: int
) -> _Written:
    """Each part's demonstrations (batches oldest first, then the sources in the order named; demonstrations in id
    order) as JSON lines, then the items nobody wrote for."""
    sinks = open_sinks(directory)
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
    counts, sha256 = balance_sides(
        directory, sinks, sha256, extremes=extremes, validation_fraction=validation_fraction, prompt_of=_prompt_of
    )
    return _Written(counts=counts, reasons=reasons, sha256=sha256, writers=writers, reviewers=reviewers)


def _name(username: str | None) -> str:
    return encode_basestring(username) if username else "null"


def _manifest(*, snapshot: DatasetSnapshot, batches: Sequence[Batch], written: _Written) -> dict:
    return {
        **manifest_head(snapshot),
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
        # Who wrote and who reviewed the demonstrations taken (imported ones have neither): username -> count.
        **manifest_tail(
            snapshot,
            written,
            writers=dict(sorted(written.writers.items())),
            reviewers=dict(sorted(written.reviewers.items())),
        ),
    }
