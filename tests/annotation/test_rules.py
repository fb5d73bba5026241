"""The pure rules: side mapping, gold match, and how votes decide a preference."""

import pytest

from annotation.rules import gold_matches, needs_another_judgment, to_canonical, vote_decision


@pytest.mark.parametrize(
    ("choice", "left_is_a", "expected"),
    [
        ("left", True, "a"),
        ("left", False, "b"),
        ("right", True, "b"),
        ("right", False, "a"),
        ("tie", False, "tie"),
        ("both_bad", True, "both_bad"),
    ],
)
def test_to_canonical(choice, left_is_a, expected):
    assert to_canonical(choice, left_is_a=left_is_a) == expected


def test_gold_match_rule():
    assert gold_matches(gold="a", choice="a")
    assert not gold_matches(gold="a", choice="b")
    assert gold_matches(gold="tie", choice="tie")
    assert not gold_matches(gold="tie", choice="both_bad")
    assert not gold_matches(gold="", choice="a")


@pytest.mark.parametrize(
    ("votes", "rule", "chosen", "reason"),
    [
        ({"a": 2, "b": 1}, "ignore_ties", "a", "agreed"),
        ({"a": 1, "b": 2}, "ignore_ties", "b", "agreed"),
        ({"a": 2, "b": 2}, "ignore_ties", None, "split"),
        ({"a": 1, "b": 1, "tie": 1}, "ignore_ties", None, "split"),
        ({"a": 3, "b": 2}, "ignore_ties", None, "low_agreement"),  # 3/5 = 0.6 is under the 0.61 bar used here
        ({"a": 1, "tie": 2}, "ignore_ties", "a", "agreed"),  # ties abstain
        ({"a": 1, "tie": 2}, "ties_block", None, "tie"),
        ({"a": 2, "tie": 1}, "ties_block", "a", "agreed"),
        ({"a": 1, "both_bad": 2}, "ignore_ties", None, "both_bad"),
        ({}, "ignore_ties", None, "no_votes"),
    ],
)
def test_vote_decision(votes, rule, chosen, reason):
    decision = vote_decision(**votes, tie_rule=rule, min_agreement=0.61)
    assert (decision.chosen, decision.reason) == (chosen, reason)


def test_contract_example_agreement_and_margin():
    decision = vote_decision(a=2, b=1, tie=0, tie_rule="ties_block")
    assert decision.chosen == "a"
    assert decision.agreement == pytest.approx(0.6667, abs=1e-4)
    assert decision.margin == pytest.approx(0.3333, abs=1e-4)


def test_only_disagreement_buys_another_judgment():
    assert needs_another_judgment(vote_decision(a=1, b=1, tie=1))
    assert needs_another_judgment(vote_decision(a=3, b=2, min_agreement=0.7))
    assert not needs_another_judgment(vote_decision(a=3))
    assert not needs_another_judgment(vote_decision(both_bad=3))
