"""Small pure rules, each in one place: side mapping, the gold match, and how votes decide a preference."""

import random
from typing import NamedTuple

_SIDES = random.SystemRandom()  # not guessable from earlier draws: an annotator must not predict where A goes

SIDE_CHOICES = ("left", "right", "tie", "both_bad")
# "na": the criterion does not apply to this item (an answer, unlike leaving the criterion out).
DIMENSION_CHOICES = ("left", "right", "tie", "na")


def draw_left_is_a() -> bool:
    """Which side response A is shown on, drawn afresh for every assignment (the loop's and qualification's)."""
    return _SIDES.random() < 0.5


def to_canonical(choice: str, *, left_is_a: bool) -> str:
    """'left'/'right' as shown → 'a'/'b' as stored; tie and both_bad pass through."""
    if choice == "left":
        return "a" if left_is_a else "b"
    if choice == "right":
        return "b" if left_is_a else "a"
    return choice


def gold_matches(*, gold: str, choice: str) -> bool:
    """A gold item is answered right when the canonical choice equals its answer; a tie on a gold tie counts.

    Both-bad never matches: a gold item has a known better response or is a known tie.
    """
    return bool(gold) and choice == gold


class VoteDecision(NamedTuple):
    """What a set of votes on one item says: the preferred side, or why there is none."""

    chosen: str | None  # "a" | "b" | None
    reason: str  # "agreed" | "split" | "low_agreement" | "tie" | "both_bad" | "no_votes"
    agreement: float  # winner's share of the votes that count under the tie rule
    margin: float  # (winner - loser) / all votes


def vote_decision(
    *,
    a: float = 0.0,
    b: float = 0.0,
    tie: float = 0.0,
    both_bad: float = 0.0,
    tie_rule: str = "ignore_ties",
    min_agreement: float = 0.6,
) -> VoteDecision:
    """Turns an item's votes (counts, or reliability weights) into a preference, in one place for the whole product.

    - Both-bad holding at least half the votes excludes the item (material for demonstrations, not pairs).
    - A and B level: split.
    - tie_rule "ties_block": as many tie votes as the winner's excludes the item as a tie; agreement counts every vote.
      tie_rule "ignore_ties": ties abstain; agreement is the winner's share of the A/B votes.
    - Agreement under `min_agreement` excludes the item as low agreement.
    """
    total = a + b + tie + both_bad
    if total <= 0:
        return VoteDecision(None, "no_votes", 0.0, 0.0)
    winner, loser, side = (a, b, "a") if a >= b else (b, a, "b")
    margin = (winner - loser) / total
    if both_bad * 2 >= total:
        return VoteDecision(None, "both_bad", both_bad / total, margin)
    if winner == loser:
        return VoteDecision(None, "split", winner / total if total else 0.0, 0.0)
    if tie_rule == "ties_block":
        if tie >= winner:
            return VoteDecision(None, "tie", tie / total, margin)
        agreement = winner / total
    else:
        agreement = winner / (a + b)
    if agreement < min_agreement:
        return VoteDecision(None, "low_agreement", agreement, margin)
    return VoteDecision(side, "agreed", agreement, margin)


def needs_another_judgment(decision: VoteDecision) -> bool:
    """Adaptive overlap buys one more vote only where the votes disagree, not where they agree on a tie or both-bad."""
    return decision.reason in ("split", "low_agreement")
