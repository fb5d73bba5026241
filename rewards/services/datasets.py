"""Dataset snapshots: closed batches' preference pairs written once, streaming, as TRL preference files with a
prompt-grouped train/validation split, the excluded items, a manifest and sha256s; and the check that none of
those files changed since.

Files, in ARTIFACTS_DIR/datasets/<id>/ (rewards.selectors.dataset_files):
- train.jsonl, validation.jsonl: one pair a line in TRL's preference format (ARCHITECTURE.md "Export"), plus
  item_id, item_pk, batch, source, criteria_version, votes, agreement, margin (and weighted_votes under
  Dawid-Skene).
- excluded.jsonl: every item left out, with its reason (rewards.services.pairs explains the reasons).
- manifest.json: everything about the snapshot, with the sha256 and line count of the three files above.

Labelled sources (issue 15). Beside human-judged batches a snapshot may take labelled sources by name (batches of
kind labelled, already-judged data brought in by annotation.services.labelled): each item becomes a pair from the
preference its file stated (labelled_choice; "tie" is excluded with reason "tie", as a human tie is). Every row says
where it came from: "source" is "human" for a human-judged batch's rows and the source's name for a labelled
source's. A labelled row has the same keys as a human one, so that `datasets` reads one schema: "criteria_version"
is null (nobody judged it under the project's criteria); "votes" holds the file's vote counts (the four labels,
missing ones 0) with "agreement" and "margin" computed from them as for human votes; when the file gave no counts,
"votes" and "agreement" are null (null, not {}: `datasets` reads an empty object beside full ones as a different
type) and "margin" is 0.0 (TRL's RewardTrainer takes every row's "margin" as its reward margin: 0 is the plain
pairwise loss, while a human pair's margin is above 0). Under Dawid-Skene weighting "weighted_votes" is null. Human batches are written first (oldest first), then the sources in
the order named; one split over all rows. The manifest and DatasetSnapshot.sources list each source with its format
and the files imported into it (file name and sha256, from its ImportRecords).

Prompt format. TRL reads one form per file, so a snapshot has one: "standard" (prompt, chosen and rejected are
strings) when every item of its batches has a text prompt, else "conversational" (prompt is a list of messages,
chosen and rejected one assistant message each). In a snapshot that mixes both, text prompts are converted to a
single user message: that loses nothing, while flattening messages into text would invent a chat format.

Split. Each pair's prompt is normalised (NFKC, case-folded, whitespace collapsed; a text prompt counts as one user
message, so it groups with the same words sent as messages) and hashed with the seed: sha256 -> a number in [0, 1);
below validation_fraction goes to validation. Every pair of one prompt gets the same number, so a prompt is never
on both sides, the result depends only on the data and the seed, and nothing has to be held in memory. The share of
validation is validation_fraction of the distinct prompts, within binomial noise. One correction: when the hash
leaves a side empty although there are at least two prompts and validation_fraction > 0, the prompt nearest the
threshold moves across, so a small snapshot still has something to train and to evaluate on.
"""

import contextlib
import hashlib
import json
import os
import shutil
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.models import Batch, Project
from annotation.rules import vote_decision
from core.files import file_sha256
from rewards.errors import (
    BatchNotClosed,
    DatasetError,
    DatasetTampered,
    DemonstrationBatchNamed,
    EvaluationBatchNamed,
    LabelledBatchNamed,
    NoBatches,
    NoPairs,
    QualificationBatchNamed,
    SourceFormatMismatch,
    UnknownBatch,
    UnknownSource,
)
from rewards.models import DatasetSnapshot
from rewards.selectors import (
    DATASET_FILE_NAMES,
    batch_export_rows,
    batches_have_messages,
    closed_batches,
    dataset_files,
    labelled_export_rows,
    labelled_sources_named,
    source_files,
)
from rewards.services.pairs import reliability_weighted_votes, withdrawn_items

VALIDATION_FRACTION_MAX = 0.5
SEED_MAX = 2**63 - 1
CHUNK_SIZE = 2_000  # items read per query: ~2,000 texts in memory at a time
MANIFEST_FORMAT = "tandem.dataset_snapshot/1"
STALE_TEMPORARY_SECONDS = 24 * 3600
_TWO_64 = float(2**64)


def dataset_create(
    *,
    project: Project,
    batch_ids: Sequence[int] | None = None,
    weighting: str = DatasetSnapshot.Weighting.VOTE,
    validation_fraction: float = 0.1,
    seed: int = 0,
    created_by=None,
    chunk_size: int = CHUNK_SIZE,
    include_evaluation: bool = False,
    sources: Sequence[str] | None = None,
) -> DatasetSnapshot:
    """Export the project's closed batches (all of them when batch_ids is None and no source is named) and the
    labelled sources named in `sources` (names of the project's labelled batches) as a new, immutable snapshot. With
    sources named, batch_ids None means no human-judged batch: a snapshot may be sources only, batches only, or both.

    Evaluation batches (checkpoints judged against each other) are left out of "all closed batches", and refused when
    named, unless include_evaluation: an ML engineer asks for them explicitly, and the manifest then lists them.

    Refuses (DatasetError and subclasses, nothing written or stored): an unknown weighting, a validation fraction
    outside [0, 0.5], a negative seed, ids that are not batches of this project, an open batch, an evaluation batch
    named without include_evaluation, a labelled or demonstration batch named among the batches, a source name that
    is not a labelled batch of this project (unknown_source) or one of demonstrations (source_format), no batches,
    no pairs. The files are written into a temporary folder that is renamed into place in the transaction that
    stores the row: if anything fails, neither the row nor the folder remains.
    """
    if weighting not in DatasetSnapshot.Weighting.values:
        raise DatasetError(
            f"Unknown weighting {weighting!r}: use one of {', '.join(DatasetSnapshot.Weighting.values)}."
        )
    check_split_settings(validation_fraction=validation_fraction, seed=seed)
    labelled = _sources_for(project=project, names=sources, kind=DatasetSnapshot.Kind.PREFERENCE)
    if labelled and batch_ids is None:
        batch_ids = []
    batches = _batches_for(
        project=project, batch_ids=batch_ids, include_evaluation=include_evaluation, allow_empty=bool(labelled)
    )
    conversational = batches_have_messages(batches=[*batches, *labelled])

    def write(directory: Path) -> _Written:
        written = _write_pairs(
            directory=directory,
            batches=batches,
            sources=labelled,
            weighting=weighting,
            chunk_size=chunk_size,
            conversational=conversational,
            validation_fraction=validation_fraction,
            seed=seed,
        )
        if not written.counts["train"] + written.counts["validation"]:
            raise NoPairs(
                f"These batches give no preference pairs ({written.reasons_text('no items')}): nothing to export."
            )
        return written

    return store_snapshot(
        project=project,
        kind=DatasetSnapshot.Kind.PREFERENCE,
        batches=batches,
        sources=labelled,
        write=write,
        manifest=_manifest,
        validation_fraction=validation_fraction,
        seed=seed,
        prompt_format=(
            DatasetSnapshot.PromptFormat.CONVERSATIONAL if conversational else DatasetSnapshot.PromptFormat.STANDARD
        ),
        created_by=created_by,
        weighting=weighting,
    )


def check_split_settings(*, validation_fraction: float, seed: int) -> None:
    """DatasetError for a validation fraction outside [0, VALIDATION_FRACTION_MAX] or a seed out of range."""
    if not 0.0 <= validation_fraction <= VALIDATION_FRACTION_MAX:
        raise DatasetError(f"The validation fraction must be between 0 and {VALIDATION_FRACTION_MAX}.")
    if not 0 <= seed <= SEED_MAX:
        raise DatasetError(f"The seed must be between 0 and {SEED_MAX}.")


def store_snapshot(
    *,
    project: Project,
    kind: str,
    batches: Sequence[Batch],
    sources: Sequence[Batch],
    write: "Callable[[Path], _Written]",
    manifest: Callable[..., dict],
    **fields,
) -> DatasetSnapshot:
    """A snapshot of either kind, stored once: `write` fills a temporary folder with train, validation and excluded
    (raising when there is nothing to export), then, in one transaction, the row (with `fields`: validation_fraction,
    seed, prompt_format, created_by, ...) is stored, `manifest(snapshot=, batches=, written=)` written beside the
    files and the folder renamed into ARTIFACTS_DIR/datasets/<id>. If anything fails, neither the row nor the folder
    remains."""
    root = Path(settings.ARTIFACTS_DIR) / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(root)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    final: Path | None = None
    try:
        written = write(tmp)
        source_entries = source_manifest(sources)
        with transaction.atomic():
            snapshot = DatasetSnapshot.objects.create(
                project=project,
                kind=kind,
                sources=source_entries,
                criteria_versions=sorted({b.criteria_version.number for b in batches}),
                train_count=written.counts["train"],
                validation_count=written.counts["validation"],
                excluded_count=written.counts["excluded"],
                excluded_reasons=dict(sorted(written.reasons.items())),
                sha256=dict(written.sha256),
                directory="",
                **fields,
            )
            snapshot.batches.set([*batches, *sources])
            manifest_bytes = (
                json.dumps(manifest(snapshot=snapshot, batches=batches, written=written), ensure_ascii=False, indent=2)
                + "\n"
            ).encode()
            _write_file(tmp / DATASET_FILE_NAMES["manifest"], manifest_bytes)
            sha256 = {**written.sha256, "manifest": hashlib.sha256(manifest_bytes).hexdigest()}
            directory = f"datasets/{snapshot.pk}"
            # The row is new in this transaction: its only write after the insert, by queryset so the
            # immutability guard in save() stays absolute.
            DatasetSnapshot.objects.filter(pk=snapshot.pk).update(directory=directory, sha256=sha256)
            snapshot.directory, snapshot.sha256 = directory, sha256
            final = root / str(snapshot.pk)
            if final.exists():
                # Left by a snapshot whose transaction rolled back after its rename (SQLite can hand the id out
                # again): no stored row owns it, since this id is ours until commit.
                shutil.rmtree(final)
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if final is not None:
            shutil.rmtree(final, ignore_errors=True)
        raise
    return snapshot


def dataset_verify(*, snapshot: DatasetSnapshot, names: Iterable[str] | None = None) -> None:
    """Raise DatasetTampered if a file of the snapshot (all, or those named) is missing or its sha256 is not the
    one stored when it was written. Reads each file once, in 1 MiB blocks."""
    files = dataset_files(snapshot=snapshot)
    for name in names if names is not None else files:
        path = files[name]
        expected = snapshot.sha256.get(name)
        if not path.is_file():
            raise DatasetTampered(f"Dataset snapshot {snapshot.pk}: {path.name} is missing ({path}).", file=name)
        actual = file_sha256(path)
        if actual != expected:
            raise DatasetTampered(
                f"Dataset snapshot {snapshot.pk}: {path.name} was changed after it was written "
                f"(sha256 {actual}, stored {expected}). Make a new snapshot instead of editing its files.",
                file=name,
            )


def prompt_group(prompt: str | list) -> bytes:
    """The normalised prompt, as the bytes the split hashes: a text prompt is one user message."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    parts = []
    for message in messages:
        content = message.get("content", "") if isinstance(message, dict) else message
        text = content if isinstance(content, str) else json.dumps(content, sort_keys=True)
        text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
        parts.append(f"{message.get('role', '') if isinstance(message, dict) else ''}\x1f{text}")
    return "\x1e".join(parts).encode()


def split_score(*, prompt: str | list, seed: int) -> float:
    """Where the prompt falls in [0, 1) for this seed: below the validation fraction means validation."""
    return _score(seed.to_bytes(8, "big"), prompt_group(prompt))


def _score(seed_bytes: bytes, group: bytes) -> float:
    return int.from_bytes(hashlib.sha256(seed_bytes + group).digest()[:8], "big") / _TWO_64


# --- Writing ----------------------------------------------------------------------------------------------------


def dataset_batches_check(
    *,
    project: Project,
    batch_ids: Sequence[int] | None = None,
    include_evaluation: bool = False,
    sources: Sequence[str] | None = None,
) -> list[Batch]:
    """The batches a snapshot of `batch_ids` and `sources` would be made from, or the DatasetError dataset_create
    would raise for them (unknown, open, evaluation, labelled, unknown source, none): lets a request that queues the
    snapshot as a job be refused at once."""
    labelled = _sources_for(project=project, names=sources, kind=DatasetSnapshot.Kind.PREFERENCE)
    if labelled and batch_ids is None:
        batch_ids = []
    batches = _batches_for(
        project=project, batch_ids=batch_ids, include_evaluation=include_evaluation, allow_empty=bool(labelled)
    )
    return [*batches, *labelled]


def _sources_for(*, project: Project, names: Sequence[str] | None, kind: str) -> list[Batch]:
    """The labelled sources named, in the order named (each once), or UnknownSource for names that are not labelled
    batches of the project, or SourceFormatMismatch for a source whose format does not fit a snapshot of `kind`
    (demonstrations make SFT snapshots, the preference formats preference snapshots)."""
    wanted = list(dict.fromkeys(names or ()))
    if not wanted:
        return []
    found = labelled_sources_named(project=project, names=wanted)
    unknown = [name for name in wanted if name not in found or found[name].kind != Batch.Kind.LABELLED]
    if unknown:
        described = ", ".join(
            f"{name!r} (a {found[name].get_kind_display().lower()} batch)" if name in found else repr(name)
            for name in unknown
        )
        raise UnknownSource(
            f"Not labelled sources of project {project.name}: {described}. Name labelled sources (imported with "
            "import_labelled); human-judged batches go in batches.",
            sources=unknown,
        )
    sources = [found[name] for name in wanted]
    demonstrations = Batch.SourceFormat.DEMONSTRATIONS
    wrong = [s for s in sources if (s.source_format == demonstrations) != (kind == DatasetSnapshot.Kind.SFT)]
    if wrong:
        names_ = ", ".join(f"{s.name} ({s.source_format or 'no format'})" for s in wrong)
        needed = "demonstrations" if kind == DatasetSnapshot.Kind.SFT else "preference data"
        raise SourceFormatMismatch(
            f"A {kind} snapshot takes sources of {needed}; these are not: {names_}.", sources=[s.name for s in wrong]
        )
    return sources


def source_manifest(sources: Sequence[Batch]) -> list[dict]:
    """Each labelled source as DatasetSnapshot.sources and the manifest list it: name, batch id, format, and the
    files imported into it (file name and sha256)."""
    return [
        {"name": s.name, "batch_id": s.pk, "format": s.source_format, "files": source_files(batch=s)} for s in sources
    ]


def batches_with_ids(*, project: Project, ids: Sequence[int]) -> list[Batch]:
    """The project's batches with these ids, oldest first (with their criteria version), or UnknownBatch naming the
    ids that are not batches of the project."""
    found = list(
        Batch.objects.filter(project=project, pk__in=ids).select_related("criteria_version").order_by("created_at")
    )
    missing = sorted(set(ids) - {b.pk for b in found})
    if missing:
        raise UnknownBatch(f"Not batches of project {project.name}: {', '.join(map(str, missing))}.", batches=missing)
    return found


def _batches_for(
    *, project: Project, batch_ids: Sequence[int] | None, include_evaluation: bool, allow_empty: bool = False
) -> list[Batch]:
    if batch_ids is None:
        batches = closed_batches(project=project, include_evaluation=include_evaluation)
        if not batches:
            raise NoBatches(f"Project {project.name} has no closed batch to export.")
        return batches
    wanted = list(dict.fromkeys(batch_ids))
    if not wanted:
        if allow_empty:
            return []
        raise NoBatches("Name at least one batch.")
    found = batches_with_ids(project=project, ids=wanted)
    _refuse(
        found,
        lambda b: b.kind == Batch.Kind.QUALIFICATION,
        QualificationBatchNamed,
        "Qualification batches test annotators; they are never training data: {names}.",
    )
    _refuse(
        found,
        lambda b: b.kind == Batch.Kind.LABELLED,
        LabelledBatchNamed,
        "Labelled sources are taken by name, as sources, not as batches: {names}.",
    )
    _refuse(
        found,
        lambda b: b.kind == Batch.Kind.DEMONSTRATION,
        DemonstrationBatchNamed,
        "Demonstration batches make SFT snapshots (kind sft), not preference pairs: {names}.",
    )
    _refuse(
        found,
        lambda b: b.kind == Batch.Kind.EVALUATION and not include_evaluation,
        EvaluationBatchNamed,
        "Evaluation batches are not training data unless asked for: {names}. Leave them out, or ask for them with "
        "include_evaluation (the snapshot's manifest then lists them).",
    )
    _refuse(
        found,
        lambda b: b.status != Batch.Status.CLOSED,
        BatchNotClosed,
        "Only closed batches can be exported; still open: {names}. Close them first.",
    )
    return found


def _refuse(batches: Sequence[Batch], wrong, error: type[DatasetError], message: str) -> None:
    """`error` naming the batches for which `wrong(batch)` holds, if any: `message` with {names} filled in."""
    refused = [b for b in batches if wrong(b)]
    if refused:
        raise error(message.format(names=", ".join(b.name for b in refused)), batches=[b.pk for b in refused])


class _Sink:
    """A file written line by line, hashed as it goes."""

    def __init__(self, path: Path):
        self.path = path
        self.handle = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 closed by close()
        self.digest = hashlib.sha256()
        self.lines = 0
        self.pending: list[str] = []

    def write(self, line: bytes) -> None:
        self.handle.write(line)
        self.digest.update(line)
        self.lines += 1

    def add(self, line: str) -> None:
        """Queue one line (text ending in a newline): encoded, written and hashed a thousand at a time."""
        self.pending.append(line)
        if len(self.pending) >= 1_000:
            self.flush_pending()

    def flush_pending(self) -> None:
        if self.pending:
            data = "".join(self.pending).encode()
            self.handle.write(data)
            self.digest.update(data)
            self.lines += len(self.pending)
            self.pending.clear()

    def close(self) -> str:
        self.flush_pending()
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return self.digest.hexdigest()


@dataclass
class _Written:
    """What writing a snapshot's files gave: lines and sha256 per file, the excluded reasons, and (SFT) who wrote and
    who reviewed the rows taken (username -> rows)."""

    counts: dict[str, int]
    reasons: Counter
    sha256: dict[str, str]
    writers: Counter = field(default_factory=Counter)
    reviewers: Counter = field(default_factory=Counter)

    def reasons_text(self, default: str) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in sorted(self.reasons.items())) or default


@dataclass
class _Extremes:
    """The lowest and highest split score seen on each side, with their prompt group, for the empty-side fix."""

    train_low: tuple[float, bytes] | None = None
    validation_high: tuple[float, bytes] | None = None
    first_group: bytes | None = None
    several_groups: bool = False

    def see(self, score: float, group: bytes, validation: bool) -> None:
        if self.first_group is None:
            self.first_group = group
        elif group != self.first_group:
            self.several_groups = True
        if validation:
            if self.validation_high is None or score > self.validation_high[0]:
                self.validation_high = (score, group)
        elif self.train_low is None or score < self.train_low[0]:
            self.train_low = (score, group)


def open_sinks(directory: Path) -> dict[str, _Sink]:
    """The three files a snapshot's rows go to: train, validation, excluded."""
    return {name: _Sink(directory / DATASET_FILE_NAMES[name]) for name in ("train", "validation", "excluded")}


def balance_sides(
    directory: Path,
    sinks: dict[str, _Sink],
    sha256: dict[str, str],
    *,
    extremes: _Extremes,
    validation_fraction: float,
    prompt_of=lambda row: row["prompt"],
) -> tuple[dict[str, int], dict[str, str]]:
    """The lines and sha256 of the three (closed) files, once the split's one correction is made: a side left empty
    although there are several prompts gets the prompt nearest the threshold (the module's docstring)."""
    counts = {name: sink.lines for name, sink in sinks.items()}
    if validation_fraction > 0 and extremes.several_groups:
        if not counts["validation"]:
            return _move_group(
                directory, extremes.train_low[1], "train", "validation", counts, sha256, prompt_of=prompt_of
            )
        if not counts["train"]:
            return _move_group(
                directory, extremes.validation_high[1], "validation", "train", counts, sha256, prompt_of=prompt_of
            )
    return counts, sha256


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # a messages prompt, re-encoded compactly
_GROUP_CACHE_SIZE = 10_000  # prompts remembered (score, group): repeats of a recent prompt skip the hash
_DECISION_CACHE_SIZE = 100_000  # vote tuples remembered; counts repeat, Dawid-Skene weights rarely do


def _write_pairs(
    *,
    directory: Path,
    batches: Sequence[Batch],
    weighting: str,
    sources: Sequence[Batch] = (),
    chunk_size: int,
    conversational: bool,
    validation_fraction: float,
    seed: int,
) -> _Written:
    """Each batch's items (oldest batch first, items in id order) as JSON lines, written straight from the rows
    batch_export_rows reads. The lines are those of rewards.services.pairs.iter_decisions encoded with _ENCODER
    (the same keys in the same order, the same number formats: tests pin the bytes), but built from pre-encoded
    pieces instead of a dict per item: the per-batch parts once, a vote tuple's decision and its encoded tail
    once per distinct tuple, the split score once per recently seen prompt."""
    sinks = open_sinks(directory)
    reasons: Counter = Counter()
    pairs = _Pairs(sinks=sinks, seed=seed, validation_fraction=validation_fraction, conversational=conversational)
    try:
        for batch in sorted(batches, key=lambda b: (b.created_at, b.pk)):  # iter_decisions' order
            weighted = reliability_weighted_votes(batch) if weighting == DatasetSnapshot.Weighting.DAWID_SKENE else None
            overlap, min_agreement = batch.project.overlap, batch.project.min_agreement
            tie_rule = batch.criteria_version.tie_rule
            common = (
                f',"batch":{encode_basestring(batch.name)},"source":"human",'
                f'"criteria_version":{batch.criteria_version.number},"votes":'
            )
            decisions: dict[tuple, tuple] = {}
            withdrawn = withdrawn_items(batch)
            for pk, external_id, prompt, messages, a_text, a_model, b_text, b_model, gold, *votes in batch_export_rows(
                batch=batch, chunk_size=chunk_size
            ):
                votes = tuple(votes)
                head = f'"item_id":{encode_basestring(external_id or str(pk))},"item_pk":{pk}{common}'
                if pk in withdrawn or gold or sum(votes) < overlap:
                    reason = "withdrawn" if pk in withdrawn else "gold" if gold else "incomplete"
                    reasons[reason] += 1
                    pairs.exclude(head, _votes_json(votes), reason, a_model, b_model, "")
                    continue
                counted = votes
                if weighted is not None:
                    weights = weighted.get(pk)
                    counted = votes if weights is None else tuple(weights.values())
                key = (votes, counted)
                decided = decisions.get(key)
                if decided is None:
                    if len(decisions) >= _DECISION_CACHE_SIZE:
                        decisions.clear()
                    decided = decisions[key] = _decided(votes, counted, weighted is not None, tie_rule, min_agreement)
                chosen, reason, votes_json, scores = decided
                if chosen is None:
                    reasons[reason] += 1
                    pairs.exclude(head, votes_json, reason, a_model, b_model, scores)
                    continue
                winner, loser = (a_text, b_text) if chosen == "a" else (b_text, a_text)
                pairs.add(prompt, messages, winner, loser, head, votes_json, scores)
        for source in sources:  # after the human-judged batches, in the order named
            _write_source(
                source=source,
                pairs=pairs,
                reasons=reasons,
                dawid_skene=weighting == DatasetSnapshot.Weighting.DAWID_SKENE,
                chunk_size=chunk_size,
            )
    finally:
        sha256 = {name: sink.close() for name, sink in sinks.items()}
    counts, sha256 = balance_sides(
        directory, sinks, sha256, extremes=pairs.extremes, validation_fraction=validation_fraction
    )
    return _Written(counts=counts, reasons=reasons, sha256=sha256)


class _Pairs:
    """Writes the lines of a preference snapshot, human-judged or labelled: a pair to the side its prompt falls on
    (the split of recently seen prompts remembered), an excluded item with its reason."""

    def __init__(self, *, sinks: dict[str, _Sink], seed: int, validation_fraction: float, conversational: bool):
        self.train, self.validation, self.excluded = sinks["train"], sinks["validation"], sinks["excluded"]
        self.seed_bytes = seed.to_bytes(8, "big")
        self.validation_fraction = validation_fraction
        self.conversational = conversational
        self.extremes = _Extremes()
        self.groups: dict[str | tuple, tuple[float, bytes, bool]] = {}

    def add(self, prompt: str, messages, winner: str, loser: str, head: str, votes_json: str, scores: str) -> None:
        """The pair's line: prompt, chosen and rejected in the snapshot's format, then `head`, the votes and the
        scores, encoded already."""
        if messages is not None:
            messages = json.loads(messages) if isinstance(messages, str) else messages
        if messages:
            prompt_json = _ENCODER.encode(messages)
            group_key = (prompt_json,)  # a tuple: never equal to a text prompt's key
        else:
            group_key = prompt
            prompt_json = encode_basestring(prompt)
            if self.conversational:
                prompt_json = f'[{{"role":"user","content":{prompt_json}}}]'
        if messages or self.conversational:
            winner_json = f'[{{"role":"assistant","content":{encode_basestring(winner)}}}]'
            loser_json = f'[{{"role":"assistant","content":{encode_basestring(loser)}}}]'
        else:
            winner_json, loser_json = encode_basestring(winner), encode_basestring(loser)
        split = self.groups.get(group_key)
        if split is None:
            if len(self.groups) >= _GROUP_CACHE_SIZE:
                self.groups.clear()
            group = _text_group(prompt) if not messages else prompt_group(messages)
            score = _score(self.seed_bytes, group)
            split = self.groups[group_key] = (score, group, score < self.validation_fraction)
            # Idempotent for a (score, group) already seen, so once per cache miss is enough.
            self.extremes.see(*split)
        (self.validation if split[2] else self.train).add(
            f'{{"prompt":{prompt_json},"chosen":{winner_json},"rejected":{loser_json},{head}{votes_json}{scores}}}\n'
        )

    def exclude(self, head: str, votes_json: str, reason: str, a_model: str, b_model: str, scores: str) -> None:
        self.excluded.add(
            f'{{{head}{votes_json},"reason":{encode_basestring(reason)},"models":'
            f'{{"a":{encode_basestring(a_model)},"b":{encode_basestring(b_model)}}}{scores}}}\n'
        )


def _write_source(*, source: Batch, pairs: _Pairs, reasons: Counter, dawid_skene: bool, chunk_size: int) -> None:
    """One labelled source's items as lines (the module's docstring gives their keys): the side its file preferred
    is chosen; a tie, a missing preference or a withdrawn item is excluded with its reason."""
    name = encode_basestring(source.name)
    common = f',"batch":{name},"source":{name},"criteria_version":null,"votes":'
    # No counts: no agreement to state, and margin 0, TRL RewardTrainer's plain pairwise loss (it reads "margin" as
    # the reward margin of every row, so a number it must be).
    no_scores = ',"agreement":null,"margin":0.0' + (',"weighted_votes":null' if dawid_skene else "")
    tie_rule = source.criteria_version.tie_rule
    scored: dict[tuple, tuple[str, str]] = {}
    for (
        pk,
        external_id,
        prompt,
        messages,
        a_text,
        a_model,
        b_text,
        b_model,
        choice,
        votes,
        withdrawn_at,
    ) in labelled_export_rows(batch=source, chunk_size=chunk_size):
        head = f'"item_id":{encode_basestring(external_id or str(pk))},"item_pk":{pk}{common}'
        counts = _labelled_counts(votes)
        if counts is None:
            votes_json, scores = "null", no_scores
        else:
            cached = scored.get(counts)
            if cached is None:
                a, b, tie, both_bad = counts
                decision = vote_decision(a=a, b=b, tie=tie, both_bad=both_bad, tie_rule=tie_rule, min_agreement=0.0)
                cached = scored[counts] = (
                    _votes_json(counts),
                    f',"agreement":{round(decision.agreement, 6)!r},"margin":{round(decision.margin, 6)!r}'
                    + (',"weighted_votes":null' if dawid_skene else ""),
                )
            votes_json, scores = cached
        if withdrawn_at is not None or choice not in ("a", "b"):
            reason = "withdrawn" if withdrawn_at is not None else "tie" if choice == "tie" else "no_preference"
            reasons[reason] += 1
            pairs.exclude(head, votes_json, reason, a_model, b_model, scores)
            continue
        winner, loser = (a_text, b_text) if choice == "a" else (b_text, a_text)
        pairs.add(prompt, messages, winner, loser, head, votes_json, scores)


def _labelled_counts(votes) -> tuple[int, int, int, int] | None:
    """A labelled item's vote counts as (a, b, tie, both_bad), missing labels 0; None when its file gave none."""
    if not isinstance(votes, dict) or not votes:
        return None
    try:
        return tuple(int(votes.get(label) or 0) for label in ("a", "b", "tie", "both_bad"))
    except (TypeError, ValueError):
        return None


def _votes_json(votes: tuple) -> str:
    return '{"a":%r,"b":%r,"tie":%r,"both_bad":%r}' % votes  # noqa: UP031 four numbers, as _ENCODER writes them


def _decided(votes: tuple, counted: tuple, weighted: bool, tie_rule: str, min_agreement: float) -> tuple:
    """One vote tuple's decision: (chosen side or None, reason, the encoded votes, the encoded scores)."""
    a, b, tie, both_bad = counted
    decision = vote_decision(a=a, b=b, tie=tie, both_bad=both_bad, tie_rule=tie_rule, min_agreement=min_agreement)
    scores = f',"agreement":{round(decision.agreement, 6)!r},"margin":{round(decision.margin, 6)!r}'
    if weighted:
        scores += ',"weighted_votes":' + _votes_json(tuple(round(value, 6) for value in counted))
    return decision.chosen, decision.reason, _votes_json(votes), scores


def _text_group(prompt: str) -> bytes:
    """prompt_group of a text prompt, without building its message."""
    text = prompt if prompt.isascii() else unicodedata.normalize("NFKC", prompt)
    return ("user\x1f" + " ".join(text.casefold().split())).encode()


def _move_group(
    directory: Path,
    group: bytes,
    source: str,
    target: str,
    counts: dict[str, int],
    sha256: dict[str, str],
    prompt_of=lambda row: row["prompt"],
) -> tuple[dict[str, int], dict[str, str]]:
    """Move one prompt's rows from `source` to the (empty) `target` file: one more streaming pass. prompt_of gives
    a row's prompt (an SFT row's is its messages but the answer)."""
    source_path = directory / DATASET_FILE_NAMES[source]
    kept_path = source_path.with_suffix(".kept")
    keep, move = _Sink(kept_path), _Sink(directory / DATASET_FILE_NAMES[target])
    with open(source_path, "rb") as lines:
        for line in lines:
            (move if prompt_group(prompt_of(json.loads(line))) == group else keep).write(line)
    counts = {**counts, source: keep.lines, target: move.lines}
    sha256 = {**sha256, source: keep.close(), target: move.close()}
    os.replace(kept_path, source_path)
    return counts, sha256


def _remove_stale_temporaries(root: Path) -> None:
    """Temporary folders of exports whose process was killed (a web worker's timeout, a crash): nothing refers to
    them. A day old is far past any export still running."""
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    for path in root.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def manifest_head(snapshot: DatasetSnapshot) -> dict:
    """The manifest's first keys, for either kind: what the snapshot is, of which project, made when and by whom."""
    return {
        "format": MANIFEST_FORMAT,
        "kind": snapshot.kind,
        "id": snapshot.pk,
        "project": {"id": snapshot.project_id, "name": snapshot.project.name},
        "created_at": snapshot.created_at.isoformat(),
        "created_by": snapshot.created_by.get_username() if snapshot.created_by else None,
    }


def manifest_tail(snapshot: DatasetSnapshot, written: _Written, **extra) -> dict:
    """The manifest's last keys, for either kind: the sources, criteria versions, counts and excluded reasons, then
    `extra`, then the three files (path, sha256, lines) and how to load them."""
    return {
        # Labelled sources (already-judged data, each row's "source" is its name): format and imported files.
        "sources": snapshot.sources,
        "criteria_versions": snapshot.criteria_versions,
        "counts": snapshot.counts,
        "excluded_reasons": snapshot.excluded_reasons,
        **extra,
        "files": {
            name: {"path": DATASET_FILE_NAMES[name], "sha256": written.sha256[name], "lines": written.counts[name]}
            for name in ("train", "validation", "excluded")
        },
        "load_with": "datasets.load_dataset('json', data_files={'train': 'train.jsonl', "
        "'validation': 'validation.jsonl'})",
    }


def _manifest(*, snapshot: DatasetSnapshot, batches: Sequence[Batch], written: _Written) -> dict:
    return {
        **manifest_head(snapshot),
        "weighting": snapshot.weighting,
        "validation_fraction": snapshot.validation_fraction,
        "seed": snapshot.seed,
        "prompt_format": snapshot.prompt_format,
        "split": {
            "grouped_by": "normalised prompt (NFKC, case-folded, whitespace collapsed)",
            "rule": "validation when sha256(seed as 8 bytes big-endian + prompt)[:8] / 2**64 < validation_fraction",
        },
        "batches": [
            {
                "id": b.pk,
                "name": b.name,
                "kind": b.kind,
                "criteria_version": b.criteria_version.number,
                "closed_at": b.closed_at.isoformat() if b.closed_at else None,
            }
            for b in batches
        ],
        # Evaluation batches are in a snapshot only when an ML engineer asked (include_evaluation): it says so here.
        "includes_evaluation": any(b.kind == Batch.Kind.EVALUATION for b in batches),
        "evaluation_batches": [b.pk for b in batches if b.kind == Batch.Kind.EVALUATION],
        **manifest_tail(snapshot, written),
    }
