"""JSON request bodies, parsed with limits: a bounded depth, and no text the database cannot store.

Python's json module recurses once per level and raises RecursionError (a 500) near 1,000 levels; NUL and lone
surrogates (`"\\u0000"`, `"\\ud800"`) parse fine and then fail in the database driver (PostgreSQL refuses NUL in
text and jsonb; no UTF-8 encoder takes a lone surrogate). Both are refused here with a 400 and a code.
"""

import json
import math
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Characters no text column can store: NUL, and UTF-16 surrogates that are not part of a pair (a valid pair in
# JSON, "\ud83d\ude00", decodes to one character outside this range).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class JsonRefused(ParseError):
    """A body that is JSON but that Tandem will not take; `code` says which limit it passed."""


def loads(body: bytes | str, *, max_depth: int | None = None):
    """json.loads for request bodies: strict UTF-8, finite numbers only, depth and characters checked.

    Raises JsonRefused (code `json_too_deep` or `invalid_json`) or ParseError for malformed JSON.
    """
    max_depth = settings.TANDEM_JSON_MAX_DEPTH if max_depth is None else max_depth
    if isinstance(body, bytes | bytearray):
        try:
            text = bytes(body).decode("utf-8")  # strict: raw surrogate bytes (ED A0 80) are not UTF-8
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
    else:
        text = body
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {exc}") from None
    # Cheap tests first: a body with fewer brackets than the limit cannot be too deep, and NUL or a surrogate can
    # only have come from a \u escape (raw control characters are not JSON; raw surrogate bytes are not UTF-8).
    check_depth = text.count("[") + text.count("{") > max_depth
    check_text = "\\u" in text
    if check_depth or check_text:
        _walk(data, max_depth=max_depth, check_depth=check_depth, check_text=check_text)
    return data


class TandemJSONParser(JSONParser):
    """DRF's JSON parser with Tandem's limits (see `loads`)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            return super().parse(stream, media_type, parser_context)
        return loads(stream.read() if stream is not None else b"")


def _walk(data, *, max_depth: int, check_depth: bool, check_text: bool) -> None:
    # Iterative, so that checking a deep document cannot itself overflow the stack.
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if check_depth and depth > max_depth:
                raise _too_deep(max_depth)
            for key, value in node.items():
                if check_text:
                    _check_text(key)
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            if check_depth and depth > max_depth:
                raise _too_deep(max_depth)
            stack.extend((value, depth + 1) for value in node)
        elif check_text and isinstance(node, str):
            _check_text(node)


def _check_text(text: str) -> None:
    if match := _UNSTORABLE.search(text):
        what = "a NUL character (\\u0000)" if match.group() == "\x00" else "a lone surrogate"
        raise JsonRefused(f"The body contains {what}, which cannot be stored as text.", code="invalid_json")


def _too_deep(max_depth: int) -> JsonRefused:
    return JsonRefused(f"The body nests deeper than {max_depth} levels.", code="json_too_deep")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e400 parses to infinity: the NaN/Infinity that strict JSON refuses, by another spelling.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:50]} is out of range")
    return value
