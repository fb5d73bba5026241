"""A simulated crowd with known accuracies and known biases, for the metrics tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rewards.metrics import Judgments

TRUTH_SHARES = (0.42, 0.42, 0.10, 0.06)  # a, b, tie, both_bad


@dataclass(frozen=True)
class Crowd:
    """Who is who in the simulation, and the accuracy each annotator has per batch."""

    n_annotators: int = 20
    n_batches: int = 6
    items_per_batch: int = 600
    overlap: int = 5
    gold_share: float = 0.25
    left_biased: int = 4  # picks the response shown left this often, whatever the content
    left_rate: float = 0.6
    verbose: int = 11  # picks the longer response this often, whatever the content
    verbose_rate: float = 0.6
    drifting: int = 17  # accuracy falls after batch `drift_after` (1-based)
    drift_after: int = 3
    drift_from: float = 0.9
    drift_to: float = 0.6
    accuracy_range: tuple[float, float] = (0.9, 0.97)
    seed: int = 0
    accuracy: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 1])
        object.__setattr__(self, "accuracy", rng.uniform(*self.accuracy_range, size=self.n_annotators))

    def accuracy_in(self, batch: int) -> np.ndarray:
        """Per annotator, the accuracy in a batch (0-based)."""
        accuracy = self.accuracy.copy()
        accuracy[self.drifting] = self.drift_to if batch >= self.drift_after else self.drift_from
        return accuracy

    def batches(self) -> list[Judgments]:
        return [self.batch(b) for b in range(self.n_batches)]

    def batch(self, b: int) -> Judgments:
        rng = np.random.default_rng([self.seed, 2, b])
        n, k = self.items_per_batch, self.overlap
        truth = rng.choice(4, size=n, p=TRUTH_SHARES)
        # `overlap` distinct annotators per item, uniformly.
        who = np.argsort(rng.random((n, self.n_annotators)), axis=1)[:, :k].ravel()
        item = np.repeat(np.arange(n), k)
        true = truth[item]
        right = rng.random(item.size) < self.accuracy_in(b)[who]
        wrong = (true + rng.integers(1, 4, size=item.size)) % 4  # uniformly one of the other three
        label = np.where(right, true, wrong)
        shown_left = rng.random(item.size) < 0.5  # True: A on the left
        longer = rng.choice([-1, 0, 1], size=n, p=[0.1, 0.45, 0.45])  # length independent of quality
        left_pick = np.where(shown_left, 0, 1)
        biased = (who == self.left_biased) & (rng.random(item.size) < self.left_rate)
        label = np.where(biased, left_pick, label)
        item_longer = longer[item]
        verbose = (who == self.verbose) & (item_longer >= 0) & (rng.random(item.size) < self.verbose_rate)
        label = np.where(verbose, item_longer, label)
        gold = np.where((rng.random(n) < self.gold_share) & (truth <= 2), truth, -1)
        return Judgments(
            item=item,
            annotator=who,
            label=label,
            n_items=n,
            n_annotators=self.n_annotators,
            seconds=rng.lognormal(np.log(25.0), 0.5, size=item.size),
            shown_left=shown_left,
            gold=gold,
            longer=longer,
            criteria=np.ones(n, np.int64),
        )
