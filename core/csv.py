"""CSV cells made safe for spreadsheets: every CSV Tandem writes goes through `safe_cell`.

Excel, LibreOffice and Google Sheets run a cell that begins with = + - @ (or a tab or carriage return before
one) as a formula: an annotator's justification "=HYPERLINK(...)" would run in a lead's spreadsheet. OWASP's
rule: prefix such a text cell with a single quote, which spreadsheets show as text. Numbers that Tandem writes as
numbers (a negative kappa, -0.25) stay numbers: they are ours, not text from a user, and a spreadsheet must
still be able to sum them.
"""

import csv
import io
from collections.abc import Iterable, Iterator

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """The cell as a spreadsheet will read it as text: text starting like a formula gets a leading '."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def rows_to_csv(rows: Iterable[dict], *, fieldnames: list[str]) -> str:
    """A table of flat dicts as CSV text, header first, every cell through safe_cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, extrasaction="ignore")
    writer.writerow({name: safe_cell(name) for name in fieldnames})
    writer.writerows({key: safe_cell(value) for key, value in row.items()} for row in rows)
    return buffer.getvalue()


class _Line:
    """A file-like sink that hands back what csv.writer wrote for one row."""

    def write(self, text: str) -> str:
        return text


def iter_csv(rows: Iterable[dict], *, fieldnames: list[str], rows_per_chunk: int = 500) -> Iterator[str]:
    """A table of flat dicts as CSV text in chunks, for a streamed download: the header first (always, even with no
    rows), every cell through safe_cell, None as an empty cell. Memory holds one chunk, whatever the table's size."""
    writer = csv.DictWriter(_Line(), fieldnames=fieldnames, extrasaction="ignore")
    yield writer.writerow({name: safe_cell(name) for name in fieldnames})
    chunk: list[str] = []
    for row in rows:
        chunk.append(writer.writerow({key: "" if value is None else safe_cell(value) for key, value in row.items()}))
        if len(chunk) >= rows_per_chunk:
            yield "".join(chunk)
            chunk.clear()
    if chunk:
        yield "".join(chunk)
