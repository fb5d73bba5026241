"""The import contract: one JSONL line in, one validated item out, or a reason it is bad. No database here."""

import hashlib
import json
import random
import re
from dataclasses import dataclass

STRATA = ("usage", "synthetic", "adversarial")
GOLD_ANSWERS = ("a", "b", "tie")
ROLES = ("system", "user", "assistant")
HH_ASSISTANT = "\n\nAssistant:"
HH_HUMAN = "\n\nHuman:"
MAX_EXTERNAL_ID = 200
MAX_SHORT_FIELD = 200

_sides = random.SystemRandom()
# Text no database column can store: NUL (PostgreSQL refuses it in text and jsonb) and UTF-16 surrogates not part
# of a pair (no UTF-8 encoder takes them). json.loads lets both through: "\u0000", "\ud800", and raw surrogate bytes,
# since it decodes bytes with surrogatepass.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class LineInvalid(ValueError):
    """A line that breaks the contract; the message says why, in words a lead can act on."""


@dataclass(slots=True)
class ParsedItem:
    external_id: str
    prompt: str
    messages: list[dict] | None
    response_a_text: str
    response_a_model: str
    response_b_text: str
    response_b_model: str
    stratum: str
    category: str
    gold: str
    dedupe_key: str


def json_object(raw: bytes) -> dict:
    """A line's JSON object, or LineInvalid: not UTF-8, not JSON, or JSON but not an object."""
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise LineInvalid("not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise LineInvalid(f"bad JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict):
        raise LineInvalid(f"expected a JSON object, got {type(data).__name__}")
    return data


def parse_line(raw: bytes, *, max_chars: int, keep_hh_gold: bool = False) -> ParsedItem:
    data = json_object(raw)
    if "chosen" in data or "rejected" in data:
        item = parse_hh(data, max_chars=max_chars, keep_gold=keep_hh_gold)
    else:
        item = parse_standard(data, max_chars=max_chars)
    if item.response_a_text.strip() == item.response_b_text.strip():
        raise LineInvalid("identical responses: response A and response B are the same text")
    # In bytes that parsed, a \u escape or a raw surrogate (ED A0..BF ..) are the only ways to write NUL or a
    # surrogate, so most lines skip the check.
    if not isinstance(raw, bytes | bytearray) or b"\\u" in raw or b"\xed" in raw:
        check_item_storable(item)
    item.dedupe_key = f"id:{item.external_id}" if item.external_id else f"sha256:{content_hash(item)}"
    return item


# Keys a prompt-only line (a demonstration batch's) must not carry: the annotators write the response.
NOT_FOR_PROMPTS = ("response_a", "response_b", "gold", "chosen", "rejected", "preferred", "response")


def parse_prompt_line(raw: bytes, *, max_chars: int) -> ParsedItem:
    """A demonstration batch's line, `{"id", "prompt" | "messages", "stratum"?, "category"?}`: the prompt the
    annotators write a response to. Responses or a gold answer are refused (the line named); the item is stored
    with empty response columns."""
    data = json_object(raw)
    if given := [key for key in NOT_FOR_PROMPTS if key in data]:
        raise LineInvalid(
            f"a demonstration batch takes prompts only (annotators write the response): remove {', '.join(given)}"
        )
    prompt, messages = prompt_or_messages(data, max_chars=max_chars)
    item = ParsedItem(
        external_id=external_id_field(data),
        prompt=prompt,
        messages=messages,
        response_a_text="",
        response_a_model="",
        response_b_text="",
        response_b_model="",
        stratum=stratum_field(data),
        category=short_field(data, "category"),
        gold="",
        dedupe_key="",
    )
    if not isinstance(raw, bytes | bytearray) or b"\\u" in raw or b"\xed" in raw:
        check_item_storable(item)
    item.dedupe_key = f"id:{item.external_id}" if item.external_id else f"sha256:{content_hash(item)}"
    return item


def check_item_storable(item: ParsedItem) -> None:
    check_storable(
        [
            ("id", item.external_id),
            ("prompt", item.prompt),
            ("response_a.text", item.response_a_text),
            ("response_a.model", item.response_a_model),
            ("response_b.text", item.response_b_text),
            ("response_b.model", item.response_b_model),
            ("category", item.category),
            *((f"messages[{i}].content", m["content"]) for i, m in enumerate(item.messages or [])),
        ]
    )


def check_storable(fields: list[tuple[str, str]]) -> None:
    """LineInvalid naming the first (name, text) the database cannot store as text (a NUL, a lone surrogate)."""
    for name, value in fields:
        if match := _UNSTORABLE.search(value):
            what = "a NUL character (\\u0000)" if match.group() == "\x00" else "a lone surrogate (invalid Unicode)"
            raise LineInvalid(f"{name} contains {what}, which cannot be stored as text")


def content_hash(item: ParsedItem) -> str:
    """Hash of what is judged, blind to which response is A, so a re-shuffled HH re-import still matches."""
    body = [
        item.messages if item.messages is not None else item.prompt,
        sorted([item.response_a_text, item.response_b_text]),
    ]
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def prompt_or_messages(data: dict, *, max_chars: int) -> tuple[str, list | None]:
    """(prompt, None) or ("", messages) from a line that must have exactly one of them (LineInvalid otherwise): the
    rule items and evaluation prompts share."""
    has_prompt, has_messages = "prompt" in data, "messages" in data
    if has_prompt and has_messages:
        raise LineInvalid("give either prompt or messages, not both")
    if not has_prompt and not has_messages:
        raise LineInvalid("missing field: prompt (or messages)")
    if has_prompt:
        return text_field(data["prompt"], "prompt", max_chars), None
    return "", _messages(data["messages"], max_chars)


def parse_standard(data: dict, *, max_chars: int) -> ParsedItem:
    prompt, messages = prompt_or_messages(data, max_chars=max_chars)
    a_text, a_model = _response(data, "response_a", max_chars)
    b_text, b_model = _response(data, "response_b", max_chars)
    gold = data.get("gold")
    if gold is not None:
        if not isinstance(gold, str) or gold.lower() not in GOLD_ANSWERS:
            raise LineInvalid(f"unknown gold answer {gold!r}: use one of {', '.join(GOLD_ANSWERS)}")
        gold = gold.lower()
    return ParsedItem(
        external_id=external_id_field(data),
        prompt=prompt,
        messages=messages,
        response_a_text=a_text,
        response_a_model=a_model,
        response_b_text=b_text,
        response_b_model=b_model,
        stratum=stratum_field(data),
        category=short_field(data, "category"),
        gold=gold or "",
        dedupe_key="",
    )


def parse_hh(data: dict, *, max_chars: int, keep_gold: bool) -> ParsedItem:
    chosen = text_field(data.get("chosen"), "chosen", max_chars)
    rejected = text_field(data.get("rejected"), "rejected", max_chars)
    split = hh_split(chosen, rejected)
    if split is None:
        raise LineInvalid("chosen and rejected share no dialogue ending in '\\n\\nAssistant:'")
    # An empty final Assistant turn is kept: in HH-RLHF it records a refusal by silence, often the chosen side.
    prefix, chosen_reply, rejected_reply = split
    messages = hh_messages(prefix)
    prompt = "" if messages else prefix.strip()
    if not messages and not prompt:
        raise LineInvalid("empty text: the dialogue before the last Assistant turn is empty")
    chosen_is_a = _sides.random() < 0.5
    a, b = (chosen_reply, rejected_reply) if chosen_is_a else (rejected_reply, chosen_reply)
    return ParsedItem(
        external_id=external_id_field(data),
        prompt=prompt,
        messages=messages,
        response_a_text=a,
        response_a_model="",
        response_b_text=b,
        response_b_model="",
        stratum=stratum_field(data),
        category=short_field(data, "category"),
        gold=("a" if chosen_is_a else "b") if keep_gold else "",
        dedupe_key="",
    )


def hh_split(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """(prompt dialogue, chosen reply, rejected reply).

    The prompt is the dialogue before the last '\\n\\nAssistant:' that both strings share. For a well-formed
    pair that is simply the dialogue before the last Assistant turn; a few HH lines diverge a turn earlier, and
    cutting at the shared turn keeps them usable instead of mixing two conversations.
    """
    common = common_prefix_length(chosen, rejected)
    cut = chosen.rfind(HH_ASSISTANT, 0, common + 1)
    # The marker must lie wholly inside the shared part.
    while cut >= 0 and cut + len(HH_ASSISTANT) > common:
        cut = chosen.rfind(HH_ASSISTANT, 0, cut)
    if cut < 0:
        return None
    start = cut + len(HH_ASSISTANT)
    return chosen[:cut], chosen[start:].strip(), rejected[start:].strip()


def common_prefix_length(a: str, b: str) -> int:
    # Bisection on slice comparisons runs at C speed; a character loop took most of an HH line's parse time.
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[low:mid] == b[low:mid]:  # a[:low] == b[:low] is already known
            low = mid
        else:
            high = mid - 1
    return low


def hh_messages(dialogue: str) -> list[dict] | None:
    """'\\n\\nHuman: …\\n\\nAssistant: …' turns as chat messages, or None when the text is not in that form."""
    text = dialogue if dialogue.startswith("\n\n") else "\n\n" + dialogue
    if not text.startswith(HH_HUMAN):
        return None
    messages: list[dict] = []
    pos = 0
    while pos < len(text):
        if text.startswith(HH_HUMAN, pos):
            role, pos = "user", pos + len(HH_HUMAN)
        elif text.startswith(HH_ASSISTANT, pos):
            role, pos = "assistant", pos + len(HH_ASSISTANT)
        else:  # pragma: no cover - the loop only stops on markers
            return None
        nxt = [i for i in (text.find(HH_HUMAN, pos), text.find(HH_ASSISTANT, pos)) if i >= 0]
        end = min(nxt) if nxt else len(text)
        messages.append({"role": role, "content": text[pos:end].strip()})
        pos = end
    if not messages or messages[-1]["role"] != "user":
        return None
    return messages


def text_field(value, field: str, max_chars: int) -> str:
    if value is None:
        raise LineInvalid(f"missing field: {field}")
    if not isinstance(value, str):
        raise LineInvalid(f"{field} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise LineInvalid(f"empty text: {field}")
    if len(value) > max_chars:
        raise LineInvalid(f"{field} is {len(value):,} characters, over the limit of {max_chars:,}")
    return value


def _messages(value, max_chars: int) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise LineInvalid("messages must be a non-empty list of {role, content}")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise LineInvalid(f"messages[{i}] must be an object with role and content")
        role = message.get("role")
        if role not in ROLES:
            raise LineInvalid(f"messages[{i}].role is {role!r}: use one of {', '.join(ROLES)}")
        out.append({"role": role, "content": text_field(message.get("content"), f"messages[{i}].content", max_chars)})
    if out[-1]["role"] != "user":
        raise LineInvalid("the last message must be the user's: the responses answer it")
    return out


def _response(data: dict, field: str, max_chars: int) -> tuple[str, str]:
    value = data.get(field)
    if value is None:
        raise LineInvalid(f"missing field: {field}")
    if not isinstance(value, dict):
        raise LineInvalid(f'{field} must be an object like {{"model": "...", "text": "..."}}')
    text = text_field(value.get("text"), f"{field}.text", max_chars)
    model = value.get("model") or ""
    if not isinstance(model, str) or len(model) > MAX_SHORT_FIELD:
        raise LineInvalid(f"{field}.model must be a string of at most {MAX_SHORT_FIELD} characters")
    return text, model


def external_id_field(data: dict) -> str:
    value = data.get("id")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise LineInvalid("id must be a string or an integer")
    value = str(value).strip()
    if len(value) > MAX_EXTERNAL_ID:
        raise LineInvalid(f"id is over {MAX_EXTERNAL_ID} characters")
    return value


def stratum_field(data: dict) -> str:
    value = data.get("stratum")
    if value in (None, ""):
        return ""
    if value not in STRATA:
        raise LineInvalid(f"unknown stratum {value!r}: use one of {', '.join(STRATA)}")
    return value


def short_field(data: dict, field: str) -> str:
    value = data.get(field)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_SHORT_FIELD:
        raise LineInvalid(f"{field} must be a string of at most {MAX_SHORT_FIELD} characters")
    return value
