"""One batch of a small simulated crowd, for calibrating the default flags: honest annotators of varying skill and
speed, and at most one planted problem. Vectorised: a batch of ~1,500 judgments is built in about a millisecond."""

from __future__ import annotations

from typing import Literal

import numpy as np

from rewards.metrics import Judgments
from tests.rewards.simulation import TRUTH_SHARES

Problem = Literal["honest", "left", "random"]


def _balanced(rng: np.random.Generator, n_annotators: int, load: int, n_items: int, overlap: int) -> np.ndarray:
    """(n_items, overlap) annotators, distinct per row, each annotator in `load` rows (n_items * overlap of them):
    a shuffled deck dealt into rows, then rows holding someone twice swap a seat with a random row until none."""
    seats = rng.permutation(np.repeat(np.arange(n_annotators), load))[: n_items * overlap].reshape(n_items, overlap)
    while True:
        ordered = np.sort(seats, axis=1)
        bad = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if not bad.size:
            return seats
        for row, other, column in zip(
            bad, rng.integers(0, n_items, size=bad.size), rng.integers(0, overlap, size=bad.size), strict=True
        ):  # one swap at a time, so every annotator keeps their load
            seats[row, column], seats[other, column] = seats[other, column], seats[row, column]


def crowd_batch(
    seed: int,
    *,
    problem: Problem = "honest",
    n_annotators: int = 10,
    per_annotator: int = 150,
    overlap: int = 3,
    gold_share: float = 0.07,
    n_gold_items: int = 20,
    left_share: float = 0.7,
    random_share: float = 0.4,
) -> Judgments:
    """Annotator 0 carries the problem: "left" picks the response shown left in `left_share` of their a/b
    choices (on a share of their a/b choices they pick left outright, otherwise they judge honestly);
    "random" answers by a coin between a and b on `random_share` of their items and like the peers on the rest.

    Everyone makes about `per_annotator` judgments, `gold_share` of them on gold items. Honest accuracy is drawn
    from 0.85-0.97 per annotator, wrong answers are one of the three other labels; the better response is the
    longer one two times in three (so preferring length is mostly preferring quality); sides are random;
    median seconds differ per annotator (15-40 s).
    """
    rng = np.random.default_rng([seed, 13])
    accuracy = rng.uniform(0.85, 0.97, size=n_annotators)
    medians = rng.uniform(15.0, 40.0, size=n_annotators)

    # Gold items: each annotator meets a random gold_share * per_annotator of them.
    per_gold = round(gold_share * per_annotator)
    # Regular items: `overlap` distinct annotators each, everyone with the same load (the rest of per_annotator).
    per_regular = per_annotator - per_gold
    n_regular = n_annotators * per_regular // overlap
    who = _balanced(rng, n_annotators, per_regular, n_regular, overlap).ravel()
    item = np.repeat(np.arange(n_regular), overlap)
    gold_pick = np.argsort(rng.random((n_annotators, n_gold_items)), axis=1)[:, :per_gold]
    item = np.concatenate([item, n_regular + gold_pick.ravel()])
    who = np.concatenate([who, np.repeat(np.arange(n_annotators), per_gold)])
    n_items = n_regular + n_gold_items

    truth = rng.choice(4, size=n_items, p=TRUTH_SHARES)
    truth[n_regular:] = rng.integers(0, 2, size=n_gold_items)  # gold items have a clear better response
    gold = np.full(n_items, -1)
    gold[n_regular:] = truth[n_regular:]
    true = truth[item]
    right = rng.random(item.size) < accuracy[who]
    wrong = (true + rng.integers(1, 4, size=item.size)) % 4
    label = np.where(right, true, wrong)
    shown_left = rng.random(item.size) < 0.5  # True: A on the left
    left_pick = np.where(shown_left, 0, 1)

    planted = who == 0
    if problem == "left":
        lean = 2 * left_share - 1  # picking left outright on this share of a/b choices gives left_share overall
        label = np.where(planted & (label <= 1) & (rng.random(item.size) < lean), left_pick, label)
    elif problem == "random":
        coin = rng.integers(0, 2, size=item.size)
        item_random = rng.random(n_items) < random_share
        label = np.where(planted & item_random[item], coin, label)

    better_longer = rng.random(n_items) < 2 / 3
    longer = np.where(truth <= 1, np.where(better_longer, truth, 1 - truth), rng.integers(0, 2, size=n_items))
    longer = np.where(rng.random(n_items) < 0.1, -1, longer)  # near-equal lengths

    order = rng.permutation(item.size)  # judgments arrive interleaved, not item by item
    return Judgments(
        item=item[order],
        annotator=who[order],
        label=label[order],
        n_items=n_items,
        n_annotators=n_annotators,
        seconds=(medians[who] * rng.lognormal(0.0, 0.5, size=item.size))[order],
        shown_left=shown_left[order],
        gold=gold,
        longer=longer,
        criteria=np.ones(n_items, np.int64),
    )
