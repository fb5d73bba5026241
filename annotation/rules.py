"""Small pure rules of the annotator loop, each in one place: side mapping and the gold match."""

SIDE_CHOICES = ("left", "right", "tie", "both_bad")
DIMENSION_CHOICES = ("left", "right", "tie")


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
