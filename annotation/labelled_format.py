"""The labelled-source contract (docs/LABELLED_DATA.md): one JSONL line of already-judged data in, one item with its
stated preference (or its demonstration) out, a reason it is bad, or a reason it is left out. No database here.

The comparison parts (HH-RLHF dialogues, our item lines, messages, ids, strata, storable text) are the item import's
own rules (annotation.import_format); this module only adds what a labelled line states on top of them.
"""

import hashlib
import json
import math
import random
from dataclasses import dataclass
from operator import attrgetter

from annotation.import_format import (
    GOLD_ANSWERS,
    LineInvalid,
    ParsedItem,
    check_item_storable,
    check_storable,
    content_hash,
    external_id_field,
    json_object,
    parse_hh,
    parse_standard,
    prompt_or_messages,
    short_field,
    stratum_field,
    text_field,
)

HH_RLHF, ITEMS, ULTRAFEEDBACK, DEMONSTRATIONS = "hh_rlhf", "items", "ultrafeedback", "demonstrations"
FORMATS = (HH_RLHF, ITEMS, ULTRAFEEDBACK, DEMONSTRATIONS)
MAX_COMPLETIONS = 64  # scored responses on one line
_sides = random.SystemRandom()  # which response is A, drawn as the item import draws it for HH-RLHF lines


class LineExcluded(Exception):
    """A well-formed line the rules leave out (UltraFeedback responses all scored alike, say): listed, not an error."""


@dataclass(slots=True)
class LabelledItem(ParsedItem):
    """An item with what its source states: the preferred side (canonical a / b / tie) and its votes, or, for the
    demonstrations format, the answer written for the prompt (the item's response columns stay empty)."""

    labelled_choice: str = ""
    labelled_votes: dict | None = None
    demonstration: str = ""


def decode(raw: bytes) -> dict:
    """The line's JSON object (import_format's rule: UTF-8, JSON, an object), or LineInvalid."""
    return json_object(raw)


def detect_format(data: dict) -> str | None:
    """The format a (first) line is written in, from its keys; None when it fits none."""
    if "chosen" in data or "rejected" in data:
        return HH_RLHF
    if "completions" in data:
        return ULTRAFEEDBACK
    if "preferred" in data or "votes" in data or "response_a" in data:
        return ITEMS
    messages = data.get("messages")
    if "response" in data or (isinstance(messages, list) and messages and _role(messages[-1]) == "assistant"):
        return DEMONSTRATIONS
    return None


def _role(message) -> str | None:
    return message.get("role") if isinstance(message, dict) else None


def parse_labelled(raw: bytes, *, source_format: str, max_chars: int) -> LabelledItem:
    """The line as a LabelledItem with its dedupe key (of what it holds: blind to which side is A); LineInvalid
    with the reason for a bad line, LineExcluded for a line the rules leave out."""
    data = decode(raw)
    item = _PARSERS[source_format](data, max_chars)
    if source_format != DEMONSTRATIONS and item.response_a_text.strip() == item.response_b_text.strip():
        raise LineInvalid("identical responses: the preferred and the other response are the same text")
    # As in import_format.parse_line: only a \u escape or raw surrogate bytes can carry what no column can store.
    if b"\\u" in raw or b"\xed" in raw:
        check_item_storable(item)
        if item.demonstration:
            check_storable([("the answer", item.demonstration)])
    if item.external_id:
        item.dedupe_key = f"id:{item.external_id}"
    elif not item.dedupe_key:
        item.dedupe_key = f"sha256:{_content_hash(item)}"
    return item


def _content_hash(item: LabelledItem) -> str:
    if not item.demonstration:
        return content_hash(item)
    body = [item.messages if item.messages is not None else item.prompt, item.demonstration]
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


_parsed_fields = attrgetter(*ParsedItem.__slots__)


def _labelled(item: ParsedItem, **extra) -> LabelledItem:
    return LabelledItem(*_parsed_fields(item), **extra)


# --- HH-RLHF -----------------------------------------------------------------------------------------------------


def _parse_hh_rlhf(data: dict, max_chars: int) -> LabelledItem:
    if "chosen" not in data or "rejected" not in data:
        raise LineInvalid(f"missing field: {'chosen' if 'chosen' not in data else 'rejected'} (HH-RLHF lines)")
    # The item import's own parsing: the shared dialogue is the prompt, A is drawn; its gold names the chosen side.
    item = parse_hh(data, max_chars=max_chars, keep_gold=True)
    choice, item.gold = item.gold, ""
    if not item.external_id:
        # The pair as the file states it, hashed as written: as blind to which side is A as content_hash, and
        # cheaper than serialising the parsed dialogue (a fifth of a line's parsing).
        digest = hashlib.sha256(data["chosen"].encode("utf-8", "surrogatepass"))
        digest.update(b"\x00rejected\x00")
        digest.update(data["rejected"].encode("utf-8", "surrogatepass"))
        item.dedupe_key = f"hh:{digest.hexdigest()}"
    return _labelled(item, labelled_choice=choice)


# --- Our item lines with a stated preference -----------------------------------------------------------------------


def _parse_items(data: dict, max_chars: int) -> LabelledItem:
    if "gold" in data:
        raise LineInvalid("gold is for items annotators judge: a labelled source states its answer in preferred")
    preferred = data.get("preferred")
    if preferred is None:
        raise LineInvalid("missing field: preferred (a, b or tie)")
    if not isinstance(preferred, str) or preferred.lower() not in GOLD_ANSWERS:
        raise LineInvalid(f"unknown preferred answer {preferred!r}: use one of {', '.join(GOLD_ANSWERS)}")
    preferred = preferred.lower()
    votes = _votes(data.get("votes"), preferred) if "votes" in data else None
    return _labelled(parse_standard(data, max_chars=max_chars), labelled_choice=preferred, labelled_votes=votes)


def _votes(value, preferred: str) -> dict:
    """{"a", "b", "tie"?} counts consistent with preferred: the preferred side has strictly more votes than the
    other one, and "tie" needs as many votes for A as for B. Tie votes are kept; they never decide."""
    if not isinstance(value, dict) or "a" not in value or "b" not in value:
        raise LineInvalid('votes must be an object like {"a": 2, "b": 1, "tie": 0}')
    if unknown := sorted(set(value) - {"a", "b", "tie"}):
        raise LineInvalid(f"votes has unknown key(s) {', '.join(map(repr, unknown))}: use a, b and tie")
    votes = {}
    for key in ("a", "b", "tie"):
        n = value.get(key, 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise LineInvalid(f"votes.{key} must be a non-negative integer, got {n!r}")
        votes[key] = n
    if not any(votes.values()):
        raise LineInvalid("votes are all zero")
    said = "a" if votes["a"] > votes["b"] else "b" if votes["b"] > votes["a"] else "tie"
    if said != preferred:
        raise LineInvalid(
            f"preferred is {preferred!r} but the votes (a {votes['a']}, b {votes['b']}) say {said!r}: the preferred "
            "side needs more votes than the other, a tie as many for each"
        )
    if "tie" not in value:
        del votes["tie"]
    return votes


# --- UltraFeedback-style scored responses --------------------------------------------------------------------------


def _parse_ultrafeedback(data: dict, max_chars: int) -> LabelledItem:
    """One pair per line: the first best-scored response against the first lowest-scored one. All scores equal:
    excluded (no preference to state)."""
    if "instruction" in data:
        if "prompt" in data or "messages" in data:
            raise LineInvalid("give one of prompt, messages or instruction")
        data = {**data, "prompt": data["instruction"]}
    prompt, messages = prompt_or_messages(data, max_chars=max_chars)
    completions = data.get("completions")
    if not isinstance(completions, list):
        raise LineInvalid("completions must be a list of {text, score} objects")
    if len(completions) < 2:
        raise LineInvalid(f"completions has {len(completions)} response(s): a pair needs at least 2")
    if len(completions) > MAX_COMPLETIONS:
        raise LineInvalid(f"completions has {len(completions)} responses, over the limit of {MAX_COMPLETIONS}")
    scored = [_completion(c, i, max_chars) for i, c in enumerate(completions)]
    best = max(range(len(scored)), key=lambda i: (scored[i][2], -i))
    worst = min(range(len(scored)), key=lambda i: (scored[i][2], i))
    if scored[best][2] == scored[worst][2]:
        raise LineExcluded(f"every response has the same score ({scored[best][2]:g}): no preference to state")
    if scored[best][0].strip() == scored[worst][0].strip():
        raise LineExcluded(
            f"the best-scored (completions[{best}]) and lowest-scored (completions[{worst}]) responses are the same text"
        )
    best_is_a = _sides.random() < 0.5
    (a_text, a_model, _), (b_text, b_model, _) = (
        (scored[best], scored[worst]) if best_is_a else (scored[worst], scored[best])
    )
    return LabelledItem(
        external_id=external_id_field(data),
        prompt=prompt,
        messages=messages,
        response_a_text=a_text,
        response_a_model=a_model,
        response_b_text=b_text,
        response_b_model=b_model,
        stratum=stratum_field(data),
        category=short_field(data, "category"),
        gold="",
        dedupe_key="",
        labelled_choice="a" if best_is_a else "b",
    )


def _completion(value, i: int, max_chars: int) -> tuple[str, str, float]:
    where = f"completions[{i}]"
    if not isinstance(value, dict):
        raise LineInvalid(f"{where} must be an object with text and score")
    if "text" in value and "response" in value:
        raise LineInvalid(f"{where}: give text or response, not both")
    text = text_field(value.get("text", value.get("response")), f"{where}.text", max_chars)
    if "score" in value and "overall_score" in value:
        raise LineInvalid(f"{where}: give score or overall_score, not both")
    score = value.get("score", value.get("overall_score"))
    if score is None:
        raise LineInvalid(f"missing field: {where}.score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise LineInvalid(f"{where}.score must be a number, got {score!r}")
    model = value.get("model") or ""
    if not isinstance(model, str) or len(model) > 200:
        raise LineInvalid(f"{where}.model must be a string of at most 200 characters")
    return text, model, float(score)


# --- Demonstrations -----------------------------------------------------------------------------------------------


def _parse_demonstrations(data: dict, max_chars: int) -> LabelledItem:
    """`{"messages": [..., {"role": "assistant", "content"}]}` or `{"prompt", "response"}`: the item is the prompt
    (or the messages before the answer), the answer its accepted demonstration."""
    for key in ("chosen", "rejected", "response_a", "response_b", "completions", "preferred", "gold"):
        if key in data:
            raise LineInvalid(f"a demonstrations line holds a prompt and its answer: remove {key}")
    if "messages" in data:
        if "prompt" in data or "response" in data:
            raise LineInvalid("give either messages (the answer last) or prompt and response, not both")
        messages = data["messages"]
        if not isinstance(messages, list) or len(messages) < 2:
            raise LineInvalid("messages must list the conversation and then the assistant's answer")
        last = messages[-1]
        if _role(last) != "assistant":
            raise LineInvalid(f"the last message must be the assistant's answer, not {_role(last)!r}")
        answer = text_field(last.get("content"), f"messages[{len(messages) - 1}].content", max_chars)
        prompt, context = prompt_or_messages({"messages": messages[:-1]}, max_chars=max_chars)
    else:
        if "response" not in data:
            raise LineInvalid("missing field: response (or messages ending with the assistant's answer)")
        answer = text_field(data["response"], "response", max_chars)
        prompt, context = prompt_or_messages(data, max_chars=max_chars)
    return LabelledItem(
        external_id=external_id_field(data),
        prompt=prompt,
        messages=context,
        response_a_text="",
        response_a_model="",
        response_b_text="",
        response_b_model="",
        stratum=stratum_field(data),
        category=short_field(data, "category"),
        gold="",
        dedupe_key="",
        demonstration=answer,
    )


_PARSERS = {
    HH_RLHF: _parse_hh_rlhf,
    ITEMS: _parse_items,
    ULTRAFEEDBACK: _parse_ultrafeedback,
    DEMONSTRATIONS: _parse_demonstrations,
}
