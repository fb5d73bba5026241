"""Item import: stream a JSONL file (plain or gzip), validate every line, insert in chunks, all or nothing."""

import hashlib
import io
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from operator import attrgetter
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router, transaction
from django.db.models.expressions import DatabaseDefault

from annotation.import_format import STRATA, LineInvalid, ParsedItem, parse_line, parse_prompt_line
from annotation.models import Batch, ImportRecord, Item, Project
from annotation.services.projects import batch_get_or_create

# The usual stratum mix and how far a file may stray before the report warns.
USUAL_MIX = {"usage": (0.60, 0.70), "synthetic": (0.20, 0.25), "adversarial": (0.05, 0.15)}
MIX_TOLERANCE = 0.05
# A chunk is also cut at this many bytes of input, so that long items (up to the text limit in every field)
# cannot make a chunk of TANDEM_IMPORT_CHUNK_SIZE lines hold hundreds of megabytes.
CHUNK_MAX_BYTES = 8 * 1024**2
# Every bad line is reported; past this many the rest are counted, so a garbage file cannot eat memory.
MAX_LISTED_ERRORS = 10_000
# The kinds of batch an import may make: comparison (prompt + two responses) and demonstration (prompts only).
IMPORT_KINDS = (Batch.Kind.COMPARISON, Batch.Kind.DEMONSTRATION)


@dataclass
class ImportReport:
    project: str
    batch: str
    filename: str
    ok: bool = True
    # Why a rejected file was refused, for API clients: import_bad_lines, or the file-wide limit it passed
    # (import_too_large, import_compression_ratio, import_too_many_lines, import_time_budget, import_unreadable,
    # import_batch_closed, import_batch_kind).
    code: str = ""
    kind: str = ""  # the batch's kind: comparison lines, or prompt-only lines for a demonstration batch
    lines: int = 0
    created: int = 0
    skipped: int = 0
    strata: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # {"line": n, "reason"} for a bad line; {"line": None, "reason"} for what was wrong with the file as a whole.
    errors: list[dict] = field(default_factory=list)
    error_count: int = 0
    seconds: float = 0.0
    record_id: int | None = None
    sha256: str = ""  # of the file as received (compressed, if it was), once it has been read to its end

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if not self.ok:
            name = self.filename or "file"
            whole = [e["reason"] for e in self.errors if e["line"] is None]
            if whole:  # the file as a whole was refused: say why, not "0 bad line(s)"
                reason = whole[0]
                return f"Rejected {name}: nothing was imported. {reason[:1].upper()}{reason[1:]}."
            return f"Rejected {name}: {self.error_count} bad line(s); nothing was imported."
        rate = self.created / self.seconds if self.seconds else 0.0
        return (
            f"Imported {self.created} item(s) into {self.project} / {self.batch}; "
            f"skipped {self.skipped} already present; {self.lines} line(s) in {self.seconds:.2f}s ({rate:,.0f} items/s)."
        )


class ImportRejected(Exception):
    def __init__(self, report: ImportReport):
        super().__init__(report.summary())
        self.report = report


def items_import(
    *,
    project: Project,
    batch_name: str,
    source: BinaryIO,
    filename: str = "",
    keep_hh_gold: bool = False,
    kind: str | None = None,
    created_by: AbstractBaseUser | None = None,
) -> ImportReport:
    """Imports every line of `source` into the batch (made if missing), or nothing at all.

    `kind` is the kind of batch the file is for (comparison or demonstration): a new batch is made of that kind,
    an existing batch of another kind is refused (import_batch_kind). None: the existing batch's kind, or
    comparison for a new one. A demonstration batch takes prompt-only lines (annotation.import_format.
    parse_prompt_line); every other kind takes comparison lines.

    Raises ImportRejected with a report listing every bad line; the report is stored as an ImportRecord
    either way. Memory stays flat: lines are read one at a time and inserted in chunks.
    """
    started = time.monotonic()
    report = ImportReport(project=project.name, batch=batch_name, filename=filename)
    strata: Counter[str] = Counter()
    batch: Batch | None = None
    try:
        with transaction.atomic():
            _lock_project_imports(project)
            # The budget bounds how long the lock is held, so it starts once the lock is ours.
            deadline = time.monotonic() + settings.TANDEM_IMPORT_TIME_BUDGET_SECONDS
            if kind is not None and kind not in IMPORT_KINDS:
                report.code = "import_batch_kind"
                _error(report, None, f"an import makes {' or '.join(IMPORT_KINDS)} batches, not {kind!r}")
                raise _Rollback
            batch, _ = batch_get_or_create(project=project, name=batch_name, kind=kind or Batch.Kind.COMPARISON)
            report.kind = batch.kind
            if batch.status == Batch.Status.CLOSED:
                report.code = "import_batch_closed"
                _error(report, None, f"batch {batch_name!r} is closed: import into an open batch")
                raise _Rollback
            if kind is not None and batch.kind != kind:
                report.code = "import_batch_kind"
                _error(
                    report,
                    None,
                    f"batch {batch_name!r} is a {batch.get_kind_display().lower()} batch, not a {kind} one: "
                    f"name a new batch for this file",
                )
                raise _Rollback
            prompts_only = batch.kind == Batch.Kind.DEMONSTRATION
            writer = _ItemWriter(project=project, batch=batch)
            chunk: list[ParsedItem] = []
            chunk_bytes = 0
            chunk_size = settings.TANDEM_IMPORT_CHUNK_SIZE
            for lineno, raw in _lines(source, report, deadline=deadline):
                try:
                    if prompts_only:
                        item = parse_prompt_line(raw, max_chars=settings.TANDEM_IMPORT_MAX_TEXT_CHARS)
                    else:
                        item = parse_line(
                            raw, max_chars=settings.TANDEM_IMPORT_MAX_TEXT_CHARS, keep_hh_gold=keep_hh_gold
                        )
                except LineInvalid as exc:
                    _error(report, lineno, str(exc))
                    chunk.clear()
                    continue
                strata[item.stratum or "unspecified"] += 1
                if report.error_count:
                    continue  # keep validating to report every bad line, but insert no more
                chunk.append(item)
                chunk_bytes += len(raw)
                if len(chunk) >= chunk_size or chunk_bytes >= CHUNK_MAX_BYTES:
                    _insert(writer, chunk, report)
                    chunk.clear()
                    chunk_bytes = 0
            if not report.error_count and chunk:
                _insert(writer, chunk, report)
            if report.error_count:
                raise _Rollback
    except _Rollback:
        report.ok = False
        report.code = report.code or "import_bad_lines"
        report.created = report.skipped = 0
        batch = Batch.objects.filter(pk=batch.pk).first() if batch else None
    report.strata = {name: strata[name] for name in (*STRATA, "unspecified") if strata[name]}
    if report.ok:
        report.warnings.extend(stratum_mix_warnings(report.strata))
    report.seconds = round(time.monotonic() - started, 3)
    report.record_id = _record(project, batch, report, created_by).pk
    if not report.ok:
        raise ImportRejected(report)
    return report


class _Rollback(Exception):
    pass


def _lock_project_imports(project: Project) -> None:
    """One import at a time per project, so two uploads of one file cannot both pass the duplicate check.

    PostgreSQL gets a transaction-scoped advisory lock (a row lock on the project would also hold up
    everything that references it); SQLite already runs one writing transaction at a time (IMMEDIATE mode).
    """
    connection = connections[router.db_for_write(Item)]
    if connection.vendor == "postgresql":
        digest = hashlib.blake2b(f"tandem.items_import:{project.pk}".encode(), digest_size=8).digest()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)])


def stratum_mix_warnings(strata: dict[str, int]) -> list[str]:
    total = sum(strata.values())
    if not total:
        return ["The file has no items."]
    warnings = []
    unspecified = strata.get("unspecified", 0)
    if unspecified:
        warnings.append(f"{unspecified} of {total} item(s) have no stratum; their mix cannot be checked.")
    known = total - unspecified
    if not known:
        return warnings
    for name, (low, high) in USUAL_MIX.items():
        share = strata.get(name, 0) / known
        if share < low - MIX_TOLERANCE or share > high + MIX_TOLERANCE or (share == 0 and low > 0):
            warnings.append(
                f"Stratum mix: {name} is {share:.0%} of the items with a stratum; usually {low:.0%}–{high:.0%}."
            )
    return warnings


def _lines(source: BinaryIO, report: ImportReport, *, deadline: float) -> Iterator[tuple[int, bytes]]:
    """Numbered non-blank lines, gunzipped if need be, never holding more than one line in memory.

    Stops at the first limit passed (size, compression ratio, line count, time), with one error for the file:
    a hostile file is refused in the time it takes to read up to the limit, not to read it all.
    """
    max_bytes = min(settings.TANDEM_IMPORT_MAX_FILE_BYTES, settings.TANDEM_IMPORT_MAX_DECOMPRESSED_BYTES)
    max_lines = settings.TANDEM_IMPORT_MAX_LINES
    # Room for the three text fields at the limit written as \uXXXX escapes (6 bytes a character), and more:
    # the cap only keeps one runaway line from filling memory.
    max_line = settings.TANDEM_IMPORT_MAX_TEXT_CHARS * 6 * 4 + 65_536
    hashing = _Hashing(source)
    stream = io.BufferedReader(hashing, buffer_size=1 << 20)
    if stream.peek(2)[:2] == b"\x1f\x8b":
        inflater = _Inflater(stream, max_bytes=max_bytes, max_ratio=settings.TANDEM_IMPORT_MAX_COMPRESSION_RATIO)
        stream = io.BufferedReader(inflater, buffer_size=_Inflater.CHUNK)
    total = 0
    lineno = 0
    try:
        while True:
            raw = stream.readline(max_line + 1)
            if not raw:
                break
            lineno += 1
            total += len(raw)
            if lineno > max_lines:
                raise _LimitPassed(
                    "import_too_many_lines", f"the file has more than the import limit of {max_lines:,} lines"
                )
            if not lineno & 0x3FF and time.monotonic() > deadline:
                raise _time_budget_passed()
            if len(raw) > max_line and not raw.endswith(b"\n"):
                while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                    total += len(rest)
                    _check_size(total, max_bytes)
                total += len(rest)
                _check_size(total, max_bytes)
                _error(report, lineno, f"line is over {max_line:,} bytes")
                continue
            _check_size(total, max_bytes)
            if raw.strip():
                yield lineno, raw
                # Checked again after the caller's work on the line (parsing, inserting a chunk).
                if time.monotonic() > deadline:
                    raise _time_budget_passed()
        report.lines = lineno
        while hashing.read(1 << 20):  # a gzip's trailing bytes the inflater did not need
            pass
        report.sha256 = hashing.digest.hexdigest()
    except _LimitPassed as exc:
        report.lines = lineno
        report.code = exc.code
        _error(report, None, exc.reason)
    except (OSError, EOFError) as exc:  # truncated or corrupt gzip
        report.lines = lineno
        report.code = "import_unreadable"
        where = f"after line {lineno:,}" if lineno else "at its start"
        _error(report, None, f"cannot read the file {where}: {exc}")


class _Hashing(io.RawIOBase):
    """The source as a raw stream that hashes what it hands on: an import records its file's sha256 (the hand-off
    package names every imported file by it) without a second pass over a file of a gigabyte."""

    def __init__(self, source: BinaryIO):
        self.source = source
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.source.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.digest.update(data)
        return size


class _LimitPassed(Exception):
    """The file as a whole passed an import limit: refused, with `code` for the API and `reason` for people."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def _check_size(total: int, max_bytes: int) -> None:
    if total > max_bytes:
        raise _too_large(max_bytes)


def _too_large(max_bytes: int) -> _LimitPassed:
    return _LimitPassed(
        "import_too_large",
        f"the file is larger than the import limit of {max_bytes:,} bytes; nothing was read past it",
    )


def _time_budget_passed() -> _LimitPassed:
    budget = settings.TANDEM_IMPORT_TIME_BUDGET_SECONDS
    return _LimitPassed(
        "import_time_budget",
        f"the import took longer than its time budget of {budget:g} s; nothing was imported (split the file)",
    )


class _Inflater(io.RawIOBase):
    """gunzip as a stream that counts bytes in and out, and stops at the first limit passed.

    GzipFile reads its input 128 KiB at a time, so a count of the compressed bytes it took says little about
    what a few bytes inflated to: a gzip of newlines (1,000 to 1) produced 128 MiB, and millions of blank lines to
    loop over, before any ratio could be checked. Here compressed bytes go in small pieces and inflate into at
    most CHUNK bytes at a time, so both counts stay exact and a bomb is refused after about one CHUNK.
    Concatenated gzip members (`cat a.gz b.gz`) are read as one file, as gzip does.
    """

    CHUNK = 1 << 20  # bytes out per read; also the BufferedReader's buffer above it
    FEED = 16 << 10  # compressed bytes in per step
    # A small file inflating a lot is harmless: the ratio counts from this many bytes out, so it is checked on the
    # first CHUNK, before any of its lines is read.
    RATIO_FROM = 256 << 10

    def __init__(self, source: BinaryIO, *, max_bytes: int, max_ratio: float):
        super().__init__()
        self._source, self._max_bytes, self._max_ratio = source, max_bytes, max_ratio
        self._inflate = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer (CRC and length checked)
        self._pending = b""
        self.bytes_in = self.bytes_out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            return self._readinto(buffer)
        except zlib.error as exc:
            raise OSError(f"not a valid gzip file ({exc})") from None

    def _readinto(self, buffer) -> int:
        while True:
            if self._inflate.eof:  # end of a member: another may follow
                self._pending = self._inflate.unused_data + self._pending
                if not self._pending and not self._feed():
                    return 0
                self._inflate = zlib.decompressobj(wbits=31)
            if not self._pending and not self._feed():
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            out = self._inflate.decompress(self._pending, min(len(buffer), self.CHUNK))
            self._pending = self._inflate.unconsumed_tail
            if out:
                self.bytes_out += len(out)
                self._check()
                buffer[: len(out)] = out
                return len(out)

    def _feed(self) -> bool:
        self._pending = self._source.read(self.FEED)
        self.bytes_in += len(self._pending)
        return bool(self._pending)

    def _check(self) -> None:
        if self.bytes_out > self._max_bytes:
            raise _too_large(self._max_bytes)
        consumed = max(1, self.bytes_in - len(self._pending))
        if self.bytes_out > self.RATIO_FROM and self.bytes_out / consumed > self._max_ratio:
            raise _LimitPassed(
                "import_compression_ratio",
                f"the file inflates to over {self._max_ratio:g} times its compressed size "
                f"({self.bytes_out:,} bytes from {consumed:,}); nothing was imported. If this is a real file, "
                "upload it uncompressed",
            )


def _error(report: ImportReport, lineno: int | None, reason: str) -> None:
    """Lists a bad line, or with lineno None an error of the file as a whole (a limit passed, a closed batch, a
    corrupt gzip): those have no line to point at, and the report says so instead of naming line 0."""
    report.error_count += 1
    if len(report.errors) < MAX_LISTED_ERRORS:
        report.errors.append({"line": lineno, "reason": reason})


# The Item columns a line fills; every other column takes its model default (see _ItemWriter).
PARSED_COLUMNS = (
    "external_id",
    "dedupe_key",
    "prompt",
    "messages",
    "response_a_text",
    "response_a_model",
    "response_b_text",
    "response_b_model",
    "stratum",
    "category",
    "gold",
)


class _ItemWriter:
    """Inserts parsed items with one prepared statement, letting the project's unique dedupe key skip repeats.

    bulk_create builds a model instance and compiles SQL for every row, which was two thirds of an import's
    time. The rows written here hold what bulk_create would have stored: the parsed fields, the project and
    batch, and each other column's model default taken once per import (created_at is the import's start).

    Items already present are skipped by ON CONFLICT on the (project, dedupe_key) unique index. A SELECT of the
    chunk's keys first looked equivalent, but both databases planned it on the project_id index, reading every
    item of the project for every chunk: quadratic in the project's size.
    """

    STAGE = "tandem_import_items"

    def __init__(self, *, project: Project, batch: Batch, columns: tuple[str, ...] = PARSED_COLUMNS):
        # `columns`: what a parsed row fills (a labelled source adds its preference: services/labelled.py).
        self.connection = connections[router.db_for_write(Item)]
        template = Item(project=project, batch=batch)
        plain, adapted, fixed, constants = [], [], [], []
        for f in Item._meta.concrete_fields:
            if f.primary_key and template.pk is None:
                continue  # generated by the database
            if f.attname in columns:
                # Text goes to the driver as it is; anything else (the messages JSON) is adapted per row.
                (plain if f.get_internal_type() in ("CharField", "TextField") else adapted).append(f)
                continue
            value = f.pre_save(template, add=True)  # defaults and auto_now_add, as a save would set them
            if isinstance(value, DatabaseDefault):
                continue  # db_default: the database fills it
            fixed.append(f)
            constants.append(f.get_db_prep_save(value, self.connection))
        if missing := set(columns) - {f.attname for f in (*plain, *adapted)}:
            raise ImproperlyConfigured(f"Item has no column for the parsed field(s) {sorted(missing)}")
        self._plain = attrgetter(*(f.attname for f in plain))
        self._adapted = [(f.attname, f.get_db_prep_save) for f in adapted]
        self._constants = tuple(constants)

        qn = self.connection.ops.quote_name
        table = qn(Item._meta.db_table)
        columns = ", ".join(qn(f.column) for f in (*plain, *adapted, *fixed))
        unique_key = ", ".join(qn(Item._meta.get_field(name).column) for name in ("project", "dedupe_key"))
        on_conflict = f"ON CONFLICT ({unique_key}) DO NOTHING"
        placeholders = ", ".join(["%s"] * (len(plain) + len(adapted) + len(fixed)))
        # Table and column names come from the model, values go as parameters.
        self._insert_sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) {on_conflict}"  # noqa: S608
        # PostgreSQL: Django binds parameters client-side, so executemany sends (and the server parses) a
        # statement per row. COPY into a temporary table and one INSERT ... SELECT per chunk is far faster.
        shape = f"SELECT 0::bigint AS ord, {columns} FROM {table} WITH NO DATA"  # noqa: S608
        self._stage_sql = [
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.STAGE} ON COMMIT DROP AS {shape}",
            f"TRUNCATE {self.STAGE}",
        ]
        self._copy_sql = f"COPY {self.STAGE} (ord, {columns}) FROM STDIN"
        self._from_stage_sql = (
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {self.STAGE} ORDER BY ord {on_conflict}"  # noqa: S608
        )

    def rows(self, items: list[ParsedItem]) -> list[tuple]:
        connection, plain, adapted, constants = self.connection, self._plain, self._adapted, self._constants
        return [
            (*plain(item), *[prep(getattr(item, name), connection) for name, prep in adapted], *constants)
            for item in items
        ]

    def insert(self, items: list[ParsedItem]) -> int:
        """Inserts the items whose dedupe key the project does not have yet, in order; returns how many."""
        if not items:
            return 0
        rows = self.rows(items)
        with self.connection.cursor() as cursor:
            if self.connection.vendor != "postgresql":
                cursor.executemany(self._insert_sql, rows)
                return cursor.rowcount
            for sql in self._stage_sql:
                cursor.execute(sql)
            with cursor.cursor.copy(self._copy_sql) as copy:  # the psycopg cursor under Django's wrapper
                for n, row in enumerate(rows):
                    copy.write_row((n, *row))
            cursor.execute(self._from_stage_sql)
            return cursor.rowcount


def _insert(writer: _ItemWriter, chunk: list[ParsedItem], report: ImportReport) -> None:
    # Repeats inside the chunk are dropped here so the first occurrence wins; the database skips the rest.
    rows, seen = [], set()
    for item in chunk:
        if item.dedupe_key not in seen:
            seen.add(item.dedupe_key)
            rows.append(item)
    created = writer.insert(rows)
    report.created += created
    report.skipped += len(chunk) - created


def _record(project: Project, batch: Batch | None, report: ImportReport, user) -> ImportRecord:
    return ImportRecord.objects.create(
        project=project,
        batch=batch,
        filename=report.filename[:500],
        status=ImportRecord.Status.IMPORTED if report.ok else ImportRecord.Status.REJECTED,
        lines=report.lines,
        created=report.created,
        skipped=report.skipped,
        strata=report.strata,
        warnings=report.warnings,
        errors=report.errors,
        seconds=report.seconds,
        sha256=report.sha256,
        created_by=user if user is not None and user.is_authenticated else None,
    )
