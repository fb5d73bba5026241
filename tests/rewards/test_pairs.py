"""Votes into preference pairs: known votes in, known pairs out, every exclusion listed with its reason; the criteria
version's tie rule; conversational and standard prompts; Dawid-Skene weighting."""

import pytest

from annotation.services import criteria_version_create
from rewards.services.pairs import preference_pairs
from tests.factories import BatchFactory, ItemFactory, ProjectFactory
from tests.rewards.judging import judge, judge_items

RATERS = ("r1", "r2", "r3", "r4", "r5")

# item external id -> votes (one per rater, in order) and, under each tie rule, the decision:
# "a"/"b" is a pair with that response chosen, anything else the exclusion reason.
CASES = {
    "clear-a": (["a", "a", "a", "b"], "a", "a"),  # 3 of 4 A/B votes: 0.75 >= 0.7
    "unanimous-b": (["b", "b", "b"], "b", "b"),
    "two-thirds": (["a", "a", "b"], "low_agreement", "low_agreement"),  # 0.67 < the project's 0.7
    "split": (["a", "b", "tie"], "split", "split"),
    "tie-abstains": (["a", "a", "tie"], "a", "low_agreement"),  # ties_block: 2 of 3 votes is 0.67
    "ties-outnumber": (["b", "tie", "tie"], "b", "tie"),
    "both-bad": (["both_bad", "both_bad", "a"], "both_bad", "both_bad"),
    "half-both-bad": (["both_bad", "both_bad", "a", "b"], "both_bad", "both_bad"),
    "incomplete": (["a", "a"], "incomplete", "incomplete"),  # fewer than the project's overlap of 3
}


def _batch_with_cases(project, name: str, suffix: str):
    batch = BatchFactory(project=project, name=name)
    items = {}
    for external_id, (votes, *_) in CASES.items():
        item = ItemFactory(batch=batch, external_id=f"{external_id}{suffix}")
        for rater, choice in zip(RATERS, votes, strict=False):
            judge(item, rater, choice)
        items[external_id] = item
    gold = ItemFactory(batch=batch, external_id=f"gold{suffix}", gold="a")
    for rater in RATERS:
        judge(gold, rater, "a")
    items["gold"] = gold
    return batch, items


@pytest.fixture
def cases(db):
    project = ProjectFactory(name="Pairs", overlap=3, min_agreement=0.7)
    ignoring, items_ignoring = _batch_with_cases(project, "ignore ties", "")
    criteria_version_create(project=project, dimensions=[], disqualifiers=[], tie_rule="ties_block")
    blocking, items_blocking = _batch_with_cases(project, "ties block", "-v2")
    return project, (ignoring, items_ignoring), (blocking, items_blocking)


def _outcomes(pairs, excluded) -> dict[str, str]:
    out = {}
    for pair in pairs:
        assert pair["item_id"] not in out
        out[pair["item_id"]] = "a" if pair["chosen"].startswith("First") else "b"
    for row in excluded:
        assert row["item_id"] not in out
        out[row["item_id"]] = row["reason"]
    return out


def test_known_votes_give_known_pairs_and_every_exclusion_with_its_reason(cases):
    _, (ignoring, items), (blocking, _) = cases
    pairs, excluded = preference_pairs(batch_ids=[blocking.pk, ignoring.pk])

    expected = {name: rule_ignore for name, (_, rule_ignore, _) in CASES.items()} | {"gold": "gold"}
    expected |= {f"{name}-v2": rule_block for name, (_, _, rule_block) in CASES.items()} | {"gold-v2": "gold"}
    assert _outcomes(pairs, excluded) == expected
    # Oldest batch first, items in id order; every item of both batches is accounted for once.
    assert [p["batch"] for p in pairs] == sorted((p["batch"] for p in pairs), key=["ignore ties", "ties block"].index)
    assert len(pairs) + len(excluded) == 2 * (len(CASES) + 1)

    by_id = {p["item_id"]: p for p in pairs}
    clear = by_id["clear-a"]
    item = items["clear-a"]
    assert clear == {
        "prompt": item.prompt,
        "chosen": item.response_a_text,
        "rejected": item.response_b_text,
        "item_id": "clear-a",
        "item_pk": item.pk,
        "batch": "ignore ties",
        "source": "human",
        "criteria_version": 1,
        "votes": {"a": 3, "b": 1, "tie": 0, "both_bad": 0},
        "agreement": 0.75,
        "margin": 0.5,
    }
    assert by_id["unanimous-b"]["chosen"] == items["unanimous-b"].response_b_text
    assert by_id["tie-abstains"]["agreement"] == 1.0  # ignore_ties: the tie vote abstains
    assert by_id["clear-a-v2"]["criteria_version"] == 2 and by_id["clear-a-v2"]["batch"] == "ties block"

    reasons = {row["item_id"]: row for row in excluded}
    assert reasons["two-thirds"]["agreement"] == pytest.approx(2 / 3, abs=1e-6)
    assert reasons["ties-outnumber-v2"]["votes"] == {"a": 0, "b": 1, "tie": 2, "both_bad": 0}
    # The lead sees which models wrote each side of an excluded item.
    assert reasons["split"]["models"] == {"a": "model-alpha", "b": "model-beta"}
    assert reasons["gold"]["votes"]["a"] == len(RATERS)


def test_conversational_items_become_conversational_pairs(db):
    project = ProjectFactory(name="Chat", overlap=3)
    batch = BatchFactory(project=project)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Capital of France?"},
    ]
    chat = ItemFactory(batch=batch, prompt="", messages=messages, external_id="chat")
    plain = ItemFactory(batch=batch, external_id="plain")
    for rater in ("r1", "r2", "r3"):
        judge(chat, rater, "b")
        judge(plain, rater, "a")
    pairs, excluded = preference_pairs(batch_ids=[batch.pk])
    assert excluded == []
    by_id = {p["item_id"]: p for p in pairs}
    assert by_id["chat"]["prompt"] == messages
    assert by_id["chat"]["chosen"] == [{"role": "assistant", "content": chat.response_b_text}]
    assert by_id["chat"]["rejected"] == [{"role": "assistant", "content": chat.response_a_text}]
    assert by_id["plain"]["prompt"] == plain.prompt
    assert (by_id["plain"]["chosen"], by_id["plain"]["rejected"]) == (plain.response_a_text, plain.response_b_text)


def test_dawid_skene_weighting_lets_reliable_annotators_outweigh_unreliable_ones(db):
    """Three careful annotators and two who pick the opposite of everyone else. On the disputed item the two
    unreliable ones outvote a careful one 2 to 1: one vote each makes it A, weighting by reliability makes it B."""
    project = ProjectFactory(name="Reliability", overlap=3, min_agreement=0.6)
    batch = BatchFactory(project=project)
    truth = ["a", "b"] * 10
    table = {
        "careful1": truth,
        "careful2": truth,
        "careful3": truth,
        "sloppy1": [{"a": "b", "b": "a"}[t] for t in truth],
        "sloppy2": [{"a": "b", "b": "a"}[t] for t in truth],
    }
    judge_items(batch, table)
    disputed = ItemFactory(batch=batch, external_id="disputed")
    judge(disputed, "sloppy1", "a")
    judge(disputed, "sloppy2", "a")
    judge(disputed, "careful1", "b")

    pairs, _ = preference_pairs(batch_ids=[batch.pk])
    by_vote = {p["item_id"]: p for p in pairs}["disputed"]
    assert by_vote["chosen"] == disputed.response_a_text and by_vote["votes"] == {
        "a": 2,
        "b": 1,
        "tie": 0,
        "both_bad": 0,
    }

    weighted_pairs, weighted_excluded = preference_pairs(batch_ids=[batch.pk], weighting="dawid_skene")
    weighted = {p["item_id"]: p for p in weighted_pairs}["disputed"]
    assert weighted["chosen"] == disputed.response_b_text
    assert weighted["votes"] == by_vote["votes"]  # the raw votes are still reported
    assert weighted["weighted_votes"]["b"] > 0.9 and weighted["weighted_votes"]["a"] < 0.2
    # The calibration items: the careful majority wins under both rules.
    assert len(weighted_pairs) == len(pairs) == 21 and weighted_excluded == []


def test_unknown_weighting_is_refused(db):
    with pytest.raises(ValueError, match="weighting"):
        preference_pairs(batch_ids=[], weighting="loudest")


def test_split_items_are_exactly_the_split_exclusions_of_preference_pairs(cases):
    from rewards.services.pairs import split_items

    _, (ignoring, _), (blocking, _) = cases
    ids = [ignoring.pk, blocking.pk]
    _, excluded = preference_pairs(batch_ids=ids)
    expected = [
        {
            "item_pk": e["item_pk"],
            "item_id": e["item_id"],
            "batch": e["batch"],
            "reason": e["reason"],
            "votes": e["votes"],
            "agreement": e["agreement"],
            "margin": e["margin"],
            "model_a": e["models"]["a"],
            "model_b": e["models"]["b"],
        }
        for e in excluded
        if e["reason"] in ("split", "low_agreement")
    ]
    assert {r["item_id"] for r in expected} == {"split", "two-thirds", "split-v2", "two-thirds-v2", "tie-abstains-v2"}
    assert split_items(batch_ids=ids) == expected
