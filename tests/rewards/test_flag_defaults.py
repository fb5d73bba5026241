"""The default flag rules catch what a lead would call a problem and leave honest annotators alone, on simulated
crowds (50 seeds of 10 annotators, about 150 judgments each, tests/rewards/flag_crowd.py) and on the demo's own
history, where the annotators the demo plants are flagged.

Measured with these defaults (seeds 0-49): honest annotators warned in 10 of 1,400 annotator-runs (0.7 %) and
watched in 50 (3.6 %); the 70 %-left annotator warned for position in 50 of 50; the one answering at random on
40 % of items warned in 50 of 50. The defaults before (Holm over the batch, p < 0.001, gold accuracy as a point
estimate) gave 2.6 %, 45 of 50 and 17 of 50.
"""

from functools import cache

import numpy as np
import pytest

from rewards.metrics import FLAG_MEANINGS, FlagRules, Judgments, batch_report, flags_for
from tests.rewards.demo_history import demo_history_judgments
from tests.rewards.flag_crowd import crowd_batch

SEEDS = range(50)
WARNING = {"warn", "alarm"}
QUALITY = {"below_peers", "consensus_kappa_low", "gold_low"}


@cache
def runs(problem: str) -> list[list]:
    """Per seed, the flags of one batch of the crowd with annotator 0 carrying the problem."""
    return [flags_for(batch_report(crowd_batch(seed, problem=problem), raters=3)) for seed in SEEDS]


def test_honest_annotators_are_warned_in_at_most_two_percent_of_runs():
    warned = watched = runs_seen = 0
    for problem in ("honest", "left", "random"):
        first_honest = 0 if problem == "honest" else 1
        for flags in runs(problem):
            for a in range(first_honest, 10):
                levels = {f.level for f in flags if f.annotator == a}
                warned += bool(levels & WARNING)
                watched += "watch" in levels
                runs_seen += 1
    assert runs_seen == 1400
    assert warned / runs_seen <= 0.02, warned
    assert watched / runs_seen <= 0.08, watched  # "watch" is a nudge, not a stream of noise


def test_an_annotator_picking_left_seventy_percent_of_the_time_is_warned_for_position():
    caught = sum(
        any(f.annotator == 0 and f.code == "position_bias" and f.level in WARNING for f in flags)
        for flags in runs("left")
    )
    assert caught >= 45


def test_an_annotator_answering_at_random_on_forty_percent_of_items_is_warned():
    caught = sum(
        any(f.annotator == 0 and f.code in QUALITY and f.level in WARNING for f in flags) for flags in runs("random")
    )
    assert caught >= 40


def test_the_planted_annotators_have_about_150_judgments_and_their_problem():
    left = crowd_batch(0, problem="left")
    mine = (left.annotator == 0) & (left.label <= 1)
    assert np.bincount(left.annotator).tolist().count(150) >= 8
    picked_left = (left.label[mine] == 0) == left.shown_left[mine]
    assert 0.62 < picked_left.mean() < 0.78


def test_the_demo_history_flags_the_annotators_it_plants_and_no_careful_one():
    judgments, names = demo_history_judgments()
    flags = flags_for(batch_report(judgments, raters=3), names=names)
    by_name = {name: {(f.code, f.level) for f in flags if f.annotator == a} for a, name in enumerate(names)}
    # sim-ann4 leans left: a position flag (and they miss gold items the others get right).
    assert {code for code, _ in by_name["sim-ann4"]} >= {"position_bias", "gold_low"}
    # sim-ann6 is quick and a little sloppy: low agreement with the others, and a pace far above theirs.
    assert any(code in QUALITY and level in WARNING for code, level in by_name["sim-ann6"])
    assert ("fast_pace", "watch") in by_name["sim-ann6"]
    for careful in ("sim-ann1", "sim-ann2", "sim-ann3", "sim-ann5"):
        assert not {level for _, level in by_name[careful]} & WARNING, careful


def _left_leaner(scale: int) -> Judgments:
    """Three annotators on 40 * scale items; annotator 0 picks the left response outright on half of them (so
    about 75 % left) and the others answer right."""
    n = 40 * scale
    rng = np.random.default_rng(scale)
    truth = rng.integers(0, 2, size=n)
    shown_left = rng.random(3 * n) < 0.5
    item = np.repeat(np.arange(n), 3)
    annotator = np.tile(np.arange(3), n)
    label = truth[item].copy()
    first = annotator == 0
    left_pick = np.where(shown_left, 0, 1)
    lean = np.zeros(3 * n, bool)
    lean[np.flatnonzero(first)[rng.permutation(n)[: n // 2]]] = True  # left outright on half: 75 % left
    label = np.where(lean, left_pick, label)
    return Judgments(item=item, annotator=annotator, label=label, n_items=n, n_annotators=3, shown_left=shown_left)


def test_a_large_effect_on_few_judgments_is_watched_and_on_many_warned():
    def leaner(flags):
        return [f for f in flags if f.code == "position_bias" and f.annotator == 0]

    few = leaner(flags_for(batch_report(_left_leaner(1))))
    many = leaner(flags_for(batch_report(_left_leaner(4))))
    assert [f.level for f in few] == ["watch"]  # 29 of 40 (72 %, p = 0.006): a large effect, little evidence
    assert [f.level for f in many] == ["warn"]
    assert "p = " in few[0].message and "of 40 a/b choices" in few[0].message
    silent = FlagRules(watch_alpha=None)
    assert leaner(flags_for(batch_report(_left_leaner(1)), rules=silent)) == []


def test_a_lean_every_annotator_shares_is_not_one_persons_bias():
    j = crowd_batch(1, problem="honest")
    # Everyone picks left a third of the time outright (about 67 % left): the page, not a person.
    rng = np.random.default_rng(7)
    lean = (j.label <= 1) & (rng.random(j.size) < 1 / 3)
    tilted = Judgments(
        item=j.item,
        annotator=j.annotator,
        label=np.where(lean, np.where(j.shown_left, 0, 1), j.label),
        n_items=j.n_items,
        n_annotators=j.n_annotators,
        shown_left=j.shown_left,
    )
    assert not [f for f in flags_for(batch_report(tilted)) if f.code == "position_bias" and f.level in WARNING]


def test_too_fast_says_the_project_minimum():
    j = crowd_batch(2, problem="honest")
    seconds = np.where(j.annotator == 0, 2.0, j.seconds)
    fast = Judgments(
        item=j.item,
        annotator=j.annotator,
        label=j.label,
        n_items=j.n_items,
        n_annotators=j.n_annotators,
        seconds=seconds,
    )
    report = batch_report(fast, min_seconds=4)
    (flag,) = [f for f in flags_for(report) if f.code == "too_fast"]
    assert flag.level == "warn" and "minimum of 4 s" in flag.message
    assert report.to_dict()["min_seconds"] == 4.0


@pytest.mark.parametrize("code", ["position_bias", "below_peers", "gold_low", "too_fast", "fast_pace", "batch_kappa"])
def test_every_flag_has_a_meaning_in_words(code):
    assert FLAG_MEANINGS[code].endswith(".")
