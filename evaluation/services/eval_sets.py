"""Evaluation prompt sets: a JSONL file imported whole (every bad line named, or nothing stored) as a new, immutable
version of a named set of a project, with its normalised prompt file written under ARTIFACTS_DIR.

A line: {"id", "prompt" | "messages", "stratum"?, "category"?, "reference"?}. The rules are the item import's
(annotation.import_format) where they apply: the same prompt and messages checks, the same id and category limits,
the same reading of the file (plain or gzip, size, line and time limits: annotation.services.imports). Besides:
- id is required (generations and the held-out check name prompts by it) and unique in the file;
- stratum is a free short slug ([a-z0-9_-], at most 50 characters, starting with a letter or digit): usage,
  synthetic, adversarial, red_team, or a project's own; empty or absent means none;
- reference is an optional text (a model answer for people to read), never sent to the model;
- any other key is refused, naming it: a typo ("refrence", "strata") must not drop a field silently.

Files: ARTIFACTS_DIR/eval_sets/<id>/prompts.jsonl, one {"id", "prompt" | "messages", "stratum", "category"} a line
in file order: what a generate run reads (its sha256 is in the row and in the run's inputs). Written to a temporary
path first, moved into place in the transaction that stores the rows.
"""

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections, router, transaction

# The item import's line rules and file reading, reused so that both imports refuse the same things alike.
from annotation.import_format import (
    LineInvalid,
    check_storable,
    external_id_field,
    prompt_or_messages,
    short_field,
    text_field,
)
from annotation.models import Project
from annotation.services.imports import ImportReport, _error, _lines
from core.files import file_sha256
from evaluation.errors import EvalSetInvalid, EvalSetTampered, EvaluationNotAllowed
from evaluation.models import EvalPrompt, EvalSet
from evaluation.selectors import eval_set_can_import, eval_set_file, eval_set_latest_version
from rewards.services.datasets import prompt_group

KEYS = ("id", "prompt", "messages", "stratum", "category", "reference")
STRATUM = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}")
MAX_NAME = 200
MAX_PROMPTS = 100_000  # an evaluation set is sampled whole by every generation run: far more is a mistake
MAX_FILE_BYTES = 256 * 1024**2  # imported in the request: the item import's file limit is for a worker's job
MAX_LISTED_ERRORS = 1_000
PROMPT_FILE = "prompts.jsonl"
INSERT_CHUNK = 1_000
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(slots=True)
class ParsedPrompt:
    external_id: str
    prompt: str
    messages: list[dict] | None
    stratum: str
    category: str
    reference: str


def parse_prompt_line(raw: bytes, *, max_chars: int) -> ParsedPrompt:
    """One line of an evaluation set, or LineInvalid saying why it is bad."""
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise LineInvalid("not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise LineInvalid(f"bad JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise LineInvalid("bad JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise LineInvalid(f"expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise LineInvalid(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
            f"a line has {', '.join(KEYS)}"
        )
    external_id = external_id_field(data)
    if not external_id:
        raise LineInvalid("missing field: id (every prompt of an evaluation set needs one)")
    prompt, messages = prompt_or_messages(data, max_chars=max_chars)
    reference = data.get("reference")
    reference = "" if reference in (None, "") else text_field(reference, "reference", max_chars)
    parsed = ParsedPrompt(
        external_id=external_id,
        prompt=prompt,
        messages=messages,
        stratum=stratum_field(data.get("stratum")),
        category=short_field(data, "category"),
        reference=reference,
    )
    check_item_storable(parsed)
    return parsed


def stratum_field(value) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not STRATUM.fullmatch(value):
        raise LineInvalid(
            f"stratum {value!r} is not a short slug: lower-case letters, digits, _ and -, at most 50 characters "
            "(usage, synthetic, adversarial, red_team...)"
        )
    return value


def check_item_storable(parsed: ParsedPrompt) -> None:
    check_storable(
        [
            ("id", parsed.external_id),
            ("prompt", parsed.prompt),
            ("category", parsed.category),
            ("reference", parsed.reference),
            *((f"messages[{i}].content", m["content"]) for i, m in enumerate(parsed.messages or [])),
        ]
    )


def prompt_group_hex(prompt: str | list) -> str:
    """sha256 of the prompt as the dataset split normalises it (rewards.services.datasets.prompt_group)."""
    return hashlib.sha256(prompt_group(prompt)).hexdigest()


# --- Import -----------------------------------------------------------------------------------------------------


def eval_set_import(
    *,
    project: Project,
    name: str,
    file: bytes | str | BinaryIO | io.TextIOBase,
    created_by: AbstractBaseUser | None = None,
    filename: str = "",
) -> EvalSet:
    """Imports the whole file as the next version of the project's set `name`, or raises EvalSetInvalid listing
    every bad line ({"line", "reason"}; "line" None for the file as a whole) with nothing written or stored.

    `created_by`, when given, must be allowed to import sets in the project (EvaluationNotAllowed otherwise).
    """
    if created_by is not None and not eval_set_can_import(user=created_by, project=project):
        raise EvaluationNotAllowed("Only the project's leads and ML engineers can import evaluation sets.")
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_NAME:
        raise EvalSetInvalid(
            f"An evaluation set needs a name of 1 to {MAX_NAME} characters; nothing was imported.",
            errors=[{"line": None, "reason": f"the set's name must be 1 to {MAX_NAME} characters"}],
            error_count=1,
        )
    prompts = _parse_file(file, filename=filename)
    root = Path(settings.ARTIFACTS_DIR) / "eval_sets"
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(root)
    tmp = root / f".tmp-{uuid.uuid4().hex}.jsonl"
    final_dir: Path | None = None
    try:
        sha256 = _write_prompt_file(tmp, prompts)
        strata = Counter(p.stratum or "unspecified" for p in prompts)
        with transaction.atomic():
            _lock_project_sets(project)
            eval_set = EvalSet.objects.create(
                project=project,
                name=name,
                version=eval_set_latest_version(project=project, name=name) + 1,
                prompt_count=len(prompts),
                strata=dict(sorted(strata.items())),
                sha256=sha256,
                path="",
                created_by=created_by,
            )
            path = f"eval_sets/{eval_set.pk}/{PROMPT_FILE}"
            # The row is new in this transaction: its one write after the insert, by queryset, so that save()'s
            # immutability guard stays absolute.
            EvalSet.objects.filter(pk=eval_set.pk).update(path=path)
            eval_set.path = path
            for start in range(0, len(prompts), INSERT_CHUNK):
                EvalPrompt.objects.bulk_create(
                    EvalPrompt(
                        eval_set=eval_set,
                        external_id=p.external_id,
                        prompt=p.prompt,
                        messages=p.messages,
                        stratum=p.stratum,
                        category=p.category,
                        reference=p.reference,
                        group=prompt_group_hex(p.messages if p.messages is not None else p.prompt),
                    )
                    for p in prompts[start : start + INSERT_CHUNK]
                )
            final_dir = root / str(eval_set.pk)
            if final_dir.exists():
                # Left by an import whose transaction rolled back after the move (SQLite can hand the id out
                # again): no stored row owns it, since this id is ours until commit.
                shutil.rmtree(final_dir)
            final_dir.mkdir()
            os.rename(tmp, final_dir / PROMPT_FILE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if final_dir is not None:
            shutil.rmtree(final_dir, ignore_errors=True)
        raise
    return eval_set


def eval_set_verify(*, eval_set: EvalSet) -> Path:
    """The set's prompt file, after checking it is there and unchanged since the import (EvalSetTampered)."""
    path = eval_set_file(eval_set=eval_set)
    if not path.is_file():
        raise EvalSetTampered(f"Evaluation set {eval_set.pk}: its prompt file is missing ({eval_set.path}).")
    actual = file_sha256(path)
    if actual != eval_set.sha256:
        raise EvalSetTampered(
            f"Evaluation set {eval_set.pk}: its prompt file was changed after the import (sha256 {actual}, stored "
            f"{eval_set.sha256}). Import the file again as a new version instead of editing it."
        )
    return path


def _parse_file(file, *, filename: str) -> list[ParsedPrompt]:
    report = ImportReport(project="", batch="", filename=filename)
    prompts: list[ParsedPrompt] = []
    first_line: dict[str, int] = {}
    max_chars = settings.TANDEM_IMPORT_MAX_TEXT_CHARS
    deadline = time.monotonic() + settings.TANDEM_IMPORT_TIME_BUDGET_SECONDS
    source = _binary(file)
    total = 0
    if source is None:
        _error(report, None, f"the file is larger than the evaluation set limit of {MAX_FILE_BYTES:,} bytes")
    else:
        for lineno, raw in _lines(source, report, deadline=deadline):
            total += len(raw)
            if total > MAX_FILE_BYTES:
                _error(report, None, f"the file is larger than the evaluation set limit of {MAX_FILE_BYTES:,} bytes")
                break
            if len(first_line) >= MAX_PROMPTS:
                _error(report, None, f"the file has more than the evaluation set limit of {MAX_PROMPTS:,} prompts")
                break
            try:
                parsed = parse_prompt_line(raw, max_chars=max_chars)
            except LineInvalid as exc:
                _error(report, lineno, str(exc))
                continue
            seen = first_line.get(parsed.external_id)
            if seen is not None:
                _error(report, lineno, f"duplicate id {parsed.external_id!r}: line {seen} has it too")
                continue
            first_line[parsed.external_id] = lineno
            if not report.error_count:
                prompts.append(parsed)
        if not report.error_count and not prompts:
            _error(report, None, "the file has no prompts")
    if report.error_count:
        errors = report.errors[:MAX_LISTED_ERRORS]
        whole = [e["reason"] for e in errors if e["line"] is None]
        label = filename or "the file"
        if whole and len(errors) == 1:
            detail = f"Rejected {label}: {whole[0]}; nothing was imported."
        else:
            detail = f"Rejected {label}: {report.error_count} bad line(s); nothing was imported."
        raise EvalSetInvalid(detail, errors=errors, error_count=report.error_count)
    return prompts


def _binary(file) -> BinaryIO | None:
    """A binary stream over the upload, or None when a text upload is over the size limit."""
    if isinstance(file, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(file))
    if isinstance(file, str):
        return io.BytesIO(file.encode("utf-8", "surrogatepass"))
    if isinstance(file, io.TextIOBase):
        text = file.read(MAX_FILE_BYTES + 1)
        return None if len(text) > MAX_FILE_BYTES else io.BytesIO(text.encode("utf-8", "surrogatepass"))
    inner = getattr(file, "file", file)  # Django's UploadedFile wraps the stream it reads
    with contextlib.suppress(AttributeError, OSError, io.UnsupportedOperation):
        inner.seek(0)
    return inner


def _write_prompt_file(path: Path, prompts: list[ParsedPrompt]) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for p in prompts:
            line = {"id": p.external_id}
            if p.messages is not None:
                line["messages"] = p.messages
            else:
                line["prompt"] = p.prompt
            line.update(stratum=p.stratum, category=p.category)
            data = (_ENCODE(line) + "\n").encode("utf-8")
            digest.update(data)
            handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return digest.hexdigest()


def _lock_project_sets(project: Project) -> None:
    """One import at a time per project, so two imports of one name cannot both take the next version (the
    unique constraint would refuse the second with an IntegrityError). SQLite runs one writer at a time already."""
    connection = connections[router.db_for_write(EvalSet)]
    if connection.vendor == "postgresql":
        digest = hashlib.blake2b(f"tandem.eval_set_import:{project.pk}".encode(), digest_size=8).digest()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)])


def _remove_stale_temporaries(root: Path) -> None:
    """Temporary files of imports whose process was killed; a day old is far past any import still running."""
    cutoff = time.time() - 24 * 3600
    for path in root.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
