"""Labelled sources: already-judged data imported into a project (docs/LABELLED_DATA.md).

A labelled source is a Batch of kind labelled, closed on import (served to nobody, never snapshotted for agreement),
whose items carry the preference their file states (Item.labelled_choice, labelled_votes) or, for demonstrations,
an accepted Demonstration with no writer. The import is the item import's (annotation.services.imports): the same
streaming reader (plain or gzip, size, line, ratio and time limits, the file's sha256), the same project lock, the
same chunked writer with its dedupe keys, the same ImportRecord; whole file or nothing, every bad line named.
"""

import hashlib
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.import_format import STRATA, LineInvalid
from annotation.labelled_format import (
    DEMONSTRATIONS,
    FORMATS,
    LabelledItem,
    LineExcluded,
    decode,
    detect_format,
    parse_labelled,
)
from annotation.models import Batch, Demonstration, Item, Project
from annotation.services.imports import (
    CHUNK_MAX_BYTES,
    MAX_LISTED_ERRORS,
    PARSED_COLUMNS,
    ImportRejected,
    ImportReport,
    _error,
    _insert,
    _ItemWriter,
    _lines,
    _lock_project_imports,
    _record,
    _Rollback,
)
from annotation.services.projects import project_current_criteria

LABELLED_COLUMNS = (*PARSED_COLUMNS, "labelled_choice", "labelled_votes")
# Excluded lines are listed in the report up to this many (the rest counted), and named in the stored record's
# warnings up to MAX_RECORDED_EXCLUDED.
MAX_RECORDED_EXCLUDED = 100
DEDUPE_KEY_MAX = Item._meta.get_field("dedupe_key").max_length


@dataclass
class LabelledImportReport(ImportReport):
    """The item import's report, plus the source's format and the lines the rules left out (not errors)."""

    source_format: str = ""
    # {"line": n, "reason"}: well-formed lines that state no usable preference (UltraFeedback scores all equal).
    excluded: list[dict] = field(default_factory=list)
    excluded_count: int = 0

    def summary(self) -> str:
        if not self.ok:
            return super().summary()
        what = "demonstration(s)" if self.source_format == DEMONSTRATIONS else "pair(s)"
        rate = self.created / self.seconds if self.seconds else 0.0
        return (
            f"Imported {self.created} {what} into {self.project} / {self.batch} (labelled source, "
            f"{self.source_format}); skipped {self.skipped} already present; excluded {self.excluded_count} line(s) "
            f"by the rules; {self.lines} line(s) in {self.seconds:.2f}s ({rate:,.0f} {what[:-3]}s/s)."
        )


def labelled_import(
    *,
    project: Project,
    source_name: str,
    file: BinaryIO,
    filename: str = "",
    format: str | None = None,
    user: AbstractBaseUser | None = None,
) -> LabelledImportReport:
    """Imports every line of `file` into the labelled source `source_name` (made, closed, if missing), or nothing.

    `format` is one of labelled_format.FORMATS; None: told from the first line. A source keeps the format it was
    made with: a file in another one is refused (labelled_format_mismatch), as is a batch of that name that is not a
    labelled source (labelled_not_a_source). Lines already in the source (the same id, or the same content) are
    skipped, so a re-import adds only what is new. Raises ImportRejected with the report listing every bad line;
    the report is stored as an ImportRecord either way.
    """
    started = time.monotonic()
    report = LabelledImportReport(project=project.name, batch=source_name, filename=filename)
    report.kind = Batch.Kind.LABELLED
    strata: Counter[str] = Counter()
    batch: Batch | None = None
    try:
        with transaction.atomic():
            _lock_project_imports(project)
            deadline = time.monotonic() + settings.TANDEM_IMPORT_TIME_BUDGET_SECONDS
            if format is not None and format not in FORMATS:
                _refuse(
                    report, "labelled_format_unknown", f"unknown format {format!r}: use one of {', '.join(FORMATS)}"
                )
            batch = Batch.objects.filter(project=project, name=source_name).first()
            if batch is not None and batch.kind != Batch.Kind.LABELLED:
                _refuse(
                    report,
                    "labelled_not_a_source",
                    f"batch {source_name!r} is a {batch.get_kind_display().lower()} batch, not a labelled source: "
                    "name a new source for this file",
                )
            lines = _lines(file, report, deadline=deadline)
            first = next(lines, None)
            source_format = format or _detected(first, batch, report)
            if batch is not None and batch.source_format and batch.source_format != source_format:
                _refuse(
                    report,
                    "labelled_format_mismatch",
                    f"source {source_name!r} holds {batch.source_format} lines, this file {source_format}: "
                    "a source keeps one format (name a new source)",
                )
            report.source_format = source_format
            if batch is None:
                batch = _source_create(project=project, name=source_name, source_format=source_format)
            _read(
                itertools.chain([first], lines) if first is not None else lines,
                report=report,
                strata=strata,
                writer=_ItemWriter(project=project, batch=batch, columns=LABELLED_COLUMNS),
                batch=batch,
            )
            if report.error_count:
                raise _Rollback
    except _Rollback:
        report.ok = False
        report.code = report.code or "import_bad_lines"
        report.created = report.skipped = 0
        batch = Batch.objects.filter(pk=batch.pk).first() if batch and batch.pk else None
    report.strata = {name: strata[name] for name in (*STRATA, "unspecified") if strata[name]}
    if report.ok:
        report.warnings.extend(excluded_warnings(report))
        if not report.lines:
            report.warnings.append("The file has no lines.")
    report.seconds = round(time.monotonic() - started, 3)
    report.record_id = _record(project, batch, report, user).pk
    if not report.ok:
        raise ImportRejected(report)
    return report


def _refuse(report: LabelledImportReport, code: str, reason: str) -> None:
    """The file refused as a whole, before any line is written."""
    report.code = code
    _error(report, None, reason)
    raise _Rollback


def _detected(first: tuple[int, bytes] | None, batch: Batch | None, report: LabelledImportReport) -> str:
    """The format of the file's first line; the source's own when that line fits none (its errors are then the
    line's). A file that is empty, or whose first line fits no format for a new source, is refused."""
    if report.error_count:  # the reader already refused the file (a limit passed, a corrupt gzip)
        raise _Rollback
    if first is None:
        if batch is not None and batch.source_format:
            return batch.source_format
        _refuse(report, "labelled_format_unknown", "the file is empty: give its format to make an empty source")
    lineno, raw = first
    try:
        found = detect_format(decode(raw))
    except LineInvalid as exc:
        found, why = None, str(exc)
    else:
        why = "its keys fit none of the formats"
    if found is None and batch is not None and batch.source_format:
        return batch.source_format
    if found is None:
        _refuse(
            report,
            "labelled_format_unknown",
            f"cannot tell the file's format from line {lineno} ({why}): give it ({', '.join(FORMATS)})",
        )
    return found


def _source_create(*, project: Project, name: str, source_format: str) -> Batch:
    """A new labelled source: closed from the start, so the assignment engine never serves it and no batch_closed
    signal asks for an agreement snapshot of it."""
    batch = Batch(
        project=project,
        name=name,
        kind=Batch.Kind.LABELLED,
        status=Batch.Status.CLOSED,
        closed_at=timezone.now(),
        source_format=source_format,
        criteria_version=project_current_criteria(project=project),
    )
    batch.full_clean()
    batch.save()
    return batch


def _read(lines, *, report: LabelledImportReport, strata: Counter, writer: _ItemWriter, batch: Batch) -> None:
    max_chars = settings.TANDEM_IMPORT_MAX_TEXT_CHARS
    chunk_size = settings.TANDEM_IMPORT_CHUNK_SIZE
    prefix = f"labelled:{batch.pk}:"  # a source's keys are its own: the same pair in a judged batch stays apart
    chunk: list[LabelledItem] = []
    chunk_bytes = 0
    for lineno, raw in lines:
        try:
            item = parse_labelled(raw, source_format=report.source_format, max_chars=max_chars)
        except LineExcluded as exc:
            report.excluded_count += 1
            if len(report.excluded) < MAX_LISTED_ERRORS:
                report.excluded.append({"line": lineno, "reason": str(exc)})
            continue
        except LineInvalid as exc:
            _error(report, lineno, str(exc))
            chunk.clear()
            continue
        item.dedupe_key = _source_key(prefix, item.dedupe_key)
        strata[item.stratum or "unspecified"] += 1
        if report.error_count:
            continue  # keep validating to report every bad line, but insert no more
        chunk.append(item)
        chunk_bytes += len(raw)
        if len(chunk) >= chunk_size or chunk_bytes >= CHUNK_MAX_BYTES:
            _write(writer, chunk, report, batch)
            chunk.clear()
            chunk_bytes = 0
    if not report.error_count and chunk:
        _write(writer, chunk, report, batch)


def _source_key(prefix: str, key: str) -> str:
    full = prefix + key
    if len(full) <= DEDUPE_KEY_MAX:
        return full
    return f"{prefix}idsha256:{hashlib.sha256(key.encode()).hexdigest()}"  # an id near the 200-character limit


def _write(writer: _ItemWriter, chunk: list[LabelledItem], report: LabelledImportReport, batch: Batch) -> None:
    _insert(writer, chunk, report)
    if report.source_format == DEMONSTRATIONS:
        _demonstrations_add(chunk, batch)


def _demonstrations_add(chunk: list[LabelledItem], batch: Batch) -> None:
    """An accepted Demonstration (no writer, no assignment) for each item of the chunk that has none yet: the items
    just written, since a source's items are only ever written here, each with its demonstration."""
    answers: dict[str, str] = {}
    for item in chunk:
        answers.setdefault(item.dedupe_key, item.demonstration)  # the first of repeated lines wins, as for items
    new = Item.objects.filter(
        project_id=batch.project_id, dedupe_key__in=list(answers), batch=batch, demonstrations__isnull=True
    ).values_list("pk", "dedupe_key")
    Demonstration.objects.bulk_create(
        [
            Demonstration(item_id=pk, batch=batch, text=answers[key], status=Demonstration.Status.ACCEPTED)
            for pk, key in new
        ]
    )


def excluded_warnings(report: LabelledImportReport) -> list[str]:
    """The excluded lines, for the stored record (which has no column of its own for them)."""
    if not report.excluded_count:
        return []
    named = [f"line {e['line']} excluded: {e['reason']}" for e in report.excluded[:MAX_RECORDED_EXCLUDED]]
    if report.excluded_count > len(named):
        named.append(f"… and {report.excluded_count - len(named)} more line(s) excluded")
    return [f"{report.excluded_count} line(s) excluded by the rules (docs/LABELLED_DATA.md).", *named]
