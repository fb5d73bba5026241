"""The line parser on its own: what one JSONL line becomes, and why a bad one is refused. No database."""

import json

import pytest

from annotation.import_format import LineInvalid, content_hash, hh_messages, hh_split, parse_line


def line(**fields) -> bytes:
    base = {
        "prompt": "What is the capital of France?",
        "response_a": {"model": "m1", "text": "Paris."},
        "response_b": {"model": "m2", "text": "It is Paris, on the Seine."},
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def parse(raw: bytes, **kwargs):
    return parse_line(raw, max_chars=kwargs.pop("max_chars", 1000), **kwargs)


def test_standard_line_keeps_every_field():
    item = parse(line(id="q-1", stratum="adversarial", category="geo", gold="B"))
    assert item.external_id == "q-1"
    assert item.dedupe_key == "id:q-1"
    assert item.prompt == "What is the capital of France?"
    assert item.messages is None
    assert (item.response_a_text, item.response_a_model) == ("Paris.", "m1")
    assert (item.response_b_text, item.response_b_model) == ("It is Paris, on the Seine.", "m2")
    assert (item.stratum, item.category, item.gold) == ("adversarial", "geo", "b")


def test_integer_id_is_accepted_as_text():
    assert parse(line(id=17)).dedupe_key == "id:17"


def test_line_without_id_is_keyed_by_content_hash_blind_to_sides():
    one = parse(line())
    swapped = parse(
        line(
            response_a={"model": "m2", "text": "It is Paris, on the Seine."},
            response_b={"model": "m1", "text": "Paris."},
        )
    )
    other = parse(line(prompt="What is the capital of Italy?"))
    assert one.dedupe_key.startswith("sha256:")
    assert one.dedupe_key == swapped.dedupe_key
    assert one.dedupe_key != other.dedupe_key


def test_messages_prompt():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Capital of France?"},
    ]
    item = parse(line(prompt=..., messages=messages))
    assert item.prompt == ""
    assert item.messages == messages


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"prompt": "x", ', "bad JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"prompt": "caf\xe9"}', "not valid UTF-8"),
        (line(prompt=...), "missing field: prompt"),
        (line(response_b=...), "missing field: response_b"),
        (line(response_a={"model": "m"}), "missing field: response_a.text"),
        (line(prompt="   "), "empty text: prompt"),
        (line(response_a={"text": ""}), "empty text: response_a.text"),
        (line(prompt=42), "prompt must be a string"),
        (line(stratum="organic"), "unknown stratum 'organic'"),
        (line(gold="left"), "unknown gold answer 'left'"),
        (line(response_b={"text": " Paris. "}), "identical responses"),
        (line(messages=[{"role": "user", "content": "x"}]), "either prompt or messages"),
        (line(prompt=..., messages=[]), "messages must be a non-empty list"),
        (line(prompt=..., messages=[{"role": "bot", "content": "x"}]), "messages[0].role is 'bot'"),
        (line(prompt=..., messages=[{"role": "user", "content": ""}]), "empty text: messages[0].content"),
        (
            line(prompt=..., messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]),
            "last message must be the user's",
        ),
        (line(id="x" * 201), "id is over 200 characters"),
        (line(id=True), "id must be a string or an integer"),
        (line(category="c" * 201), "category must be a string of at most 200"),
        (line(response_a={"text": "t", "model": 5}), "response_a.model must be a string"),
        (line(response_a={"text": "a" * 1001}), "response_a.text is 1,001 characters, over the limit of 1,000"),
    ],
)
def test_bad_line_says_why(raw, reason):
    with pytest.raises(LineInvalid) as caught:
        parse(raw)
    assert reason in str(caught.value)


def test_field_at_the_limit_is_fine():
    assert parse(line(response_a={"text": "a" * 1000})).response_a_text == "a" * 1000


# --- HH-RLHF lines -------------------------------------------------------------------------------

DIALOGUE = "\n\nHuman: Hi there\n\nAssistant: Hello, how can I help?\n\nHuman: Tell me a joke"


def hh(chosen_reply: str, rejected_reply: str, dialogue: str = DIALOGUE, **extra) -> bytes:
    return json.dumps(
        {
            "chosen": f"{dialogue}\n\nAssistant: {chosen_reply}",
            "rejected": f"{dialogue}\n\nAssistant: {rejected_reply}",
            **extra,
        }
    ).encode()


def test_hh_line_becomes_messages_and_two_replies():
    item = parse(hh("Why did the chicken cross the road?", "No."))
    assert item.messages == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert item.prompt == ""
    assert {item.response_a_text, item.response_b_text} == {"Why did the chicken cross the road?", "No."}
    assert item.gold == ""


def test_hh_gold_follows_the_chosen_side_whichever_side_it_lands_on():
    sides = set()
    for _ in range(60):
        item = parse(hh("Chosen reply.", "Rejected reply."), keep_hh_gold=True)
        chosen_text = item.response_a_text if item.gold == "a" else item.response_b_text
        assert chosen_text == "Chosen reply."
        sides.add(item.gold)
    assert sides == {"a", "b"}  # 2**-59 chance of a false failure


def test_hh_dedupe_key_is_stable_across_shuffles():
    keys = {parse(hh("One.", "Two.")).dedupe_key for _ in range(20)}
    assert len(keys) == 1


def test_hh_empty_final_turn_is_kept():
    item = parse(hh("", "Sure, here it is."))
    assert {item.response_a_text, item.response_b_text} == {"", "Sure, here it is."}


def test_hh_identical_replies_are_refused():
    with pytest.raises(LineInvalid, match="identical responses"):
        parse(hh("Same.", "Same."))


def test_hh_missing_rejected_is_refused():
    with pytest.raises(LineInvalid, match="missing field: rejected"):
        parse(json.dumps({"chosen": DIALOGUE + "\n\nAssistant: x"}).encode())


def test_hh_without_a_shared_assistant_turn_is_refused():
    raw = json.dumps({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"}).encode()
    with pytest.raises(LineInvalid, match="share no dialogue"):
        parse(raw)


def test_hh_split_cuts_at_the_last_assistant_marker():
    chosen = DIALOGUE + "\n\nAssistant: good"
    rejected = DIALOGUE + "\n\nAssistant: bad"
    assert hh_split(chosen, rejected) == (DIALOGUE, "good", "bad")


def test_hh_split_with_replies_sharing_a_prefix():
    # The replies share "Sure" — the cut must still be the Assistant marker, not the end of the common text.
    assert hh_split(DIALOGUE + "\n\nAssistant: Sure thing", DIALOGUE + "\n\nAssistant: Surely not") == (
        DIALOGUE,
        "Sure thing",
        "Surely not",
    )


def test_hh_split_when_the_replies_diverge_a_turn_early():
    # Like line 1255 of the harmless-base test file: the rejected side ends one turn before the chosen side.
    shared = "\n\nHuman: Are drag queens men?\n\nAssistant: No.\n\nHuman: Isn't that drag kings?"
    chosen = shared + "\n\nAssistant: No, kings are the opposite.  Human: Then why?\n\nAssistant: Because."
    rejected = shared + "\n\nAssistant: A drag king is the opposite of a drag queen."
    prefix, chosen_reply, rejected_reply = hh_split(chosen, rejected)
    assert prefix == shared
    assert chosen_reply.startswith("No, kings are the opposite.")
    assert rejected_reply == "A drag king is the opposite of a drag queen."


def test_hh_split_when_one_side_is_a_prefix_of_the_other():
    assert hh_split(DIALOGUE + "\n\nAssistant:", DIALOGUE + "\n\nAssistant: More") == (DIALOGUE, "", "More")


def test_hh_messages_is_none_for_free_text():
    assert hh_messages("Just a question") is None


def test_hh_free_text_prefix_becomes_a_plain_prompt():
    item = parse(
        json.dumps({"chosen": "Q: why?\n\nAssistant: because", "rejected": "Q: why?\n\nAssistant: no"}).encode()
    )
    assert item.messages is None
    assert item.prompt == "Q: why?"


def test_content_hash_ignores_models_and_metadata():
    a = parse(line(stratum="usage", category="x"))
    b = parse(line(response_a={"model": "other", "text": "Paris."}))
    assert content_hash(a) == content_hash(b)


def test_common_prefix_length_matches_the_definition():
    import random

    from annotation.import_format import common_prefix_length

    def by_hand(a: str, b: str) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    rng = random.Random(3)
    for _ in range(500):
        base = "".join(rng.choices("ab\n", k=rng.randint(0, 40)))
        a = base + "".join(rng.choices("abc", k=rng.randint(0, 5)))
        b = base + "".join(rng.choices("abc", k=rng.randint(0, 5)))
        assert common_prefix_length(a, b) == by_hand(a, b), (a, b)
