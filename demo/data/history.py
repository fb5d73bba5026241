"""The demo's judged history: an earlier batch of demo items and the votes six simulated annotators gave them.

Pure planning, no Django: `history_lines()` are import-format lines (the first HISTORY_ITEMS demo items under ids
of their own, so they do not clash with the open batch's), and `plan_votes()` says who judged which item, what they
chose (canonical a / b / tie / both_bad), which side they saw on the left and how long they took. seed_demo writes
the plan into the tables and closes the batch. The same plan on every run (fixed seeds).

The annotators are mostly careful and agree; one leans to the left-hand response, one is quick and a little sloppy;
some items are hard and split; gold items are judged by everyone; split items get extra votes the way the adaptive
overlap gives them (annotation.rules decides, as judgment_submit does). The regular items after the first BASE_ITEMS
are close calls, where careful readers call a tie about two times in three and otherwise split evenly: a few are
still split after the extra votes (the lead's split-items list). They come last so that the votes on the first
BASE_ITEMS items are the same as before they were added.
"""

import math
import random
from dataclasses import dataclass

from annotation.rules import needs_another_judgment, vote_decision
from demo.data import demo_lines, demo_pairs

BASE_ITEMS = 120  # the history as it first was; the items after them are close calls (or gold)
CLOSE_CALLS = 13  # lines added after BASE_ITEMS: the regular ones are close calls (a matter of taste)
HISTORY_ITEMS = BASE_ITEMS + CLOSE_CALLS
HARD_SHARE = 0.1  # items where careful readers disagree: their votes split
CLOSE_CALL_TIE_RATE = 0.65  # with ties abstaining, only tie-heavy items stay split after extra votes


@dataclass(frozen=True)
class SimAnnotator:
    username: str
    accuracy: float  # chance of picking the better response on an ordinary item
    left_lean: float  # chance of picking whatever is shown on the left, before reading closely
    tie_rate: float
    median_seconds: float
    rush_rate: float = 0.0  # chance of a judgment under two and a half seconds


SIM_ANNOTATORS = [
    SimAnnotator("sim-ann1", accuracy=0.96, left_lean=0.0, tie_rate=0.02, median_seconds=31),
    SimAnnotator("sim-ann2", accuracy=0.95, left_lean=0.0, tie_rate=0.03, median_seconds=38),
    SimAnnotator("sim-ann3", accuracy=0.94, left_lean=0.0, tie_rate=0.03, median_seconds=26),
    SimAnnotator("sim-ann4", accuracy=0.94, left_lean=0.3, tie_rate=0.02, median_seconds=22),  # leans left
    SimAnnotator("sim-ann5", accuracy=0.96, left_lean=0.0, tie_rate=0.02, median_seconds=44),
    SimAnnotator("sim-ann6", accuracy=0.86, left_lean=0.05, tie_rate=0.05, median_seconds=14, rush_rate=0.06),
]


@dataclass(frozen=True)
class PlannedVote:
    item_id: str  # the line's external id
    annotator: str
    choice: str  # canonical: a / b / tie / both_bad
    shown_left: str  # "a" or "b"
    seconds: float


def history_lines() -> list[dict]:
    """The history batch's import lines: the first HISTORY_ITEMS demo items, ids prefixed demo-history-."""
    lines = []
    for line in demo_lines()[:HISTORY_ITEMS]:
        lines.append({**line, "id": "demo-history-" + line["id"].removeprefix("demo-")})
    return lines


def close_calls(lines: list[dict]) -> set[str]:
    """External ids of the close calls: the regular (non-gold) lines after the first BASE_ITEMS."""
    return {line["id"] for line in lines[BASE_ITEMS:] if "gold" not in line}


def better_sides(lines: list[dict]) -> dict[str, str]:
    """External id -> the side ("a" / "b") holding the better response, for every history line."""
    better = {p.key: p.better for pairs in demo_pairs().values() for p in pairs}
    out = {}
    for line in lines:
        key = line["id"].removeprefix("demo-history-")
        out[line["id"]] = "a" if line["response_a"]["text"] == better[key] else "b"
    return out


def plan_votes(
    lines: list[dict], *, overlap: int, max_overlap: int, min_agreement: float, tie_rule: str
) -> tuple[list[PlannedVote], dict[str, int]]:
    """Every simulated judgment of the history batch, in the order each annotator made them, and the extra
    judgments the adaptive overlap asked for per item (external id -> extra)."""
    rng = random.Random("tandem-demo-history")
    sides = better_sides(lines)
    by_name = {a.username: a for a in SIM_ANNOTATORS}
    names = list(by_name)
    first_round: list[PlannedVote] = []
    extra_round: list[PlannedVote] = []
    extras: dict[str, int] = {}
    seen = dict.fromkeys(names, 0)
    close = close_calls(lines)

    def vote(name: str, item_id: str, hard: bool) -> PlannedVote:
        seen[name] += 1
        return _vote(rng, by_name[name], item_id, sides[item_id], hard=hard, nth=seen[name], close=item_id in close)

    for line in lines:
        item_id = line["id"]
        hard = rng.random() < HARD_SHARE and "gold" not in line
        order = rng.sample(names, len(names))
        if "gold" in line:  # gold has no cap: everyone meets it sooner or later
            first_round += [vote(n, item_id, False) for n in order]
            continue
        votes = [vote(n, item_id, hard) for n in order[:overlap]]
        first_round += votes
        # As judgment_submit's adaptive overlap: a complete item whose votes split asks for one more, up to max.
        while len(votes) < max_overlap:
            counts = {c: sum(v.choice == c for v in votes) for c in ("a", "b", "tie", "both_bad")}
            decision = vote_decision(**counts, tie_rule=tie_rule, min_agreement=min_agreement)
            if not needs_another_judgment(decision):
                break
            extra = vote(order[len(votes)], item_id, hard)
            votes.append(extra)
            extra_round.append(extra)
        if len(votes) > overlap:
            extras[item_id] = len(votes) - overlap
    return first_round + extra_round, extras


def _vote(
    rng: random.Random, who: SimAnnotator, item_id: str, better: str, *, hard: bool, nth: int, close: bool = False
) -> PlannedVote:
    worse = "b" if better == "a" else "a"
    # The better response is on the left for every other item an annotator sees: with only ~65 votes each, coin
    # flips would give careful annotators left shares of 0.4 or 0.6 by luck and hide the one who really leans left.
    shown_left = better if nth % 2 == 0 else worse
    roll = rng.random()
    if close:  # a matter of taste: mostly a tie, otherwise either answer
        tie_rate, hard = CLOSE_CALL_TIE_RATE, True
    else:
        tie_rate = who.tie_rate + (0.15 if hard else 0.0)  # a hard item is often a close call
    if roll < tie_rate:
        choice = "tie"
    elif roll < tie_rate + 0.01:
        choice = "both_bad"
    elif rng.random() < who.left_lean:
        choice = shown_left
    else:
        accuracy = 0.5 if close else 0.55 if hard else who.accuracy
        choice = better if rng.random() < accuracy else worse
    if rng.random() < who.rush_rate:
        seconds = rng.uniform(1.2, 2.5)
    else:  # log-normal around the annotator's median; hard items take longer
        seconds = who.median_seconds * math.exp(rng.gauss(0, 0.45)) * (1.4 if hard else 1.0)
    return PlannedVote(item_id, who.username, choice, shown_left, round(max(seconds, 1.0), 1))
