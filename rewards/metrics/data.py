"""The array form of a set of judgments that every metric reads, and its validation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

LABELS: tuple[str, ...] = ("a", "b", "tie", "both_bad")
A, B, TIE, BOTH_BAD = 0, 1, 2, 3
N_LABELS = len(LABELS)
NOT_GOLD = -1
NO_LONGER = -1


def _int_array(values: object, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got {array.dtype}")
    return array.astype(np.int64, copy=False)


def _check_range(array: np.ndarray, low: int, high: int, name: str) -> None:
    # Bounds are inclusive; an empty array is always in range.
    if array.size and (array.min() < low or array.max() > high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got [{array.min()}, {array.max()}]")


@dataclass(frozen=True, eq=False)
class Judgments:
    """Parallel arrays, one entry a judgment, plus per-item arrays indexed by item position.

    Invalid input (wrong shapes, out-of-range codes) raises ValueError: that is a caller's bug, not
    a degenerate batch. Precondition, not checked because it costs a sort: one annotator judges an
    item at most once (the database enforces it).
    """

    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    n_items: int
    n_annotators: int
    seconds: np.ndarray | None = None
    shown_left: np.ndarray | None = None
    gold: np.ndarray | None = None
    longer: np.ndarray | None = None
    criteria: np.ndarray | None = None

    def __post_init__(self) -> None:
        item = _int_array(self.item, "item")
        annotator = _int_array(self.annotator, "annotator")
        label = _int_array(self.label, "label")
        n = item.size
        if annotator.size != n or label.size != n:
            raise ValueError("item, annotator and label must have the same length")
        if self.n_items < 0 or self.n_annotators < 0:
            raise ValueError("n_items and n_annotators must be non-negative")
        _check_range(item, 0, self.n_items - 1, "item")
        _check_range(annotator, 0, self.n_annotators - 1, "annotator")
        _check_range(label, 0, N_LABELS - 1, "label")
        set_ = object.__setattr__
        set_(self, "item", item)
        set_(self, "annotator", annotator)
        set_(self, "label", label)
        if self.seconds is not None:
            seconds = np.asarray(self.seconds, dtype=np.float64)
            if seconds.shape != (n,) or not np.all(np.isfinite(seconds)):
                raise ValueError("seconds must be finite, one per judgment")
            set_(self, "seconds", seconds)
        if self.shown_left is not None:
            shown_left = np.asarray(self.shown_left)
            if shown_left.shape != (n,) or shown_left.dtype != np.bool_:
                raise ValueError("shown_left must be booleans, one per judgment")
            set_(self, "shown_left", shown_left)
        for name, low, high in (("gold", NOT_GOLD, TIE), ("longer", NO_LONGER, B), ("criteria", None, None)):
            values = getattr(self, name)
            if values is None:
                continue
            array = _int_array(values, name)
            if array.size != self.n_items:
                raise ValueError(f"{name} must have one entry per item ({self.n_items}), got {array.size}")
            if low is not None:
                _check_range(array, low, high, name)
            set_(self, name, array)

    @classmethod
    def from_arrays(
        cls,
        *,
        item: object,
        annotator: object,
        label: object,
        n_items: int | None = None,
        n_annotators: int | None = None,
        **optional: object,
    ) -> Judgments:
        """Build from arrays, taking the item and annotator counts from the largest index when not given."""
        item_array = _int_array(item, "item")
        annotator_array = _int_array(annotator, "annotator")
        if n_items is None:
            n_items = int(item_array.max()) + 1 if item_array.size else 0
        if n_annotators is None:
            n_annotators = int(annotator_array.max()) + 1 if annotator_array.size else 0
        return cls(
            item=item_array,
            annotator=annotator_array,
            label=label,
            n_items=n_items,
            n_annotators=n_annotators,
            **optional,
        )

    @property
    def size(self) -> int:
        return int(self.item.size)

    def subset(self, mask: np.ndarray) -> Judgments:
        """The judgments where mask is true, in the same item and annotator index spaces."""
        mask = np.asarray(mask, dtype=bool)
        pick = {name: getattr(self, name) for name in ("seconds", "shown_left")}
        return Judgments(
            item=self.item[mask],
            annotator=self.annotator[mask],
            label=self.label[mask],
            n_items=self.n_items,
            n_annotators=self.n_annotators,
            seconds=None if pick["seconds"] is None else pick["seconds"][mask],
            shown_left=None if pick["shown_left"] is None else pick["shown_left"][mask],
            gold=self.gold,
            longer=self.longer,
            criteria=self.criteria,
        )

    def regular(self) -> Judgments:
        """The judgments of regular (non-gold) items, in the same index spaces: what agreement is computed on.

        Gold items are picked to have an obvious answer and are served to many annotators, so counting them
        inflates agreement (on the demo history, batch kappa 0.55 with them and 0.47 without); their own figure
        is gold accuracy. Without a gold array every item is regular.
        """
        if self.gold is None or not (self.gold != NOT_GOLD).any():
            return self
        return self.subset(self.gold[self.item] == NOT_GOLD)

    # Derived arrays several metrics share, computed once per object.

    @cached_property
    def item_counts(self) -> np.ndarray:
        """Judgments per item, shape (n_items,)."""
        return np.bincount(self.item, minlength=self.n_items)

    @cached_property
    def item_label_counts(self) -> np.ndarray:
        """Judgments per item and label, shape (n_items, 4)."""
        flat = np.bincount(self.item * N_LABELS + self.label, minlength=self.n_items * N_LABELS)
        return flat.reshape(self.n_items, N_LABELS)

    @cached_property
    def item_order(self) -> np.ndarray:
        """A stable order of the judgments grouped by item (array order is kept inside an item)."""
        if self.size < 2 or np.all(self.item[1:] >= self.item[:-1]):
            return np.arange(self.size)
        return np.argsort(self.item, kind="stable")

    @cached_property
    def rank_in_item(self) -> np.ndarray:
        """For each judgment, how many judgments of its item come before it in array order."""
        order = self.item_order
        starts = np.cumsum(self.item_counts) - self.item_counts
        rank = np.empty(self.size, dtype=np.int64)
        rank[order] = np.arange(self.size) - starts[self.item[order]]
        return rank


def judgments_concat(parts: Sequence[Judgments]) -> Judgments:
    """Several batches as one: item indices are offset so batches stay apart; annotators are shared.

    Optional arrays are kept only when every part has them.
    """
    if not parts:
        return Judgments.from_arrays(item=np.zeros(0, np.int64), annotator=np.zeros(0, np.int64), label=[])
    offsets = np.cumsum([0] + [part.n_items for part in parts[:-1]])

    def joined(name: str, shift: bool = False) -> np.ndarray | None:
        arrays = [getattr(part, name) for part in parts]
        if any(array is None for array in arrays):
            return None
        if shift:
            arrays = [array + offset for array, offset in zip(arrays, offsets, strict=True)]
        return np.concatenate(arrays)

    return Judgments(
        item=joined("item", shift=True),
        annotator=joined("annotator"),
        label=joined("label"),
        n_items=int(sum(part.n_items for part in parts)),
        n_annotators=max(part.n_annotators for part in parts),
        seconds=joined("seconds"),
        shown_left=joined("shown_left"),
        gold=joined("gold"),
        longer=joined("longer"),
        criteria=joined("criteria"),
    )


def longer_side(length_a: object, length_b: object, *, min_relative_difference: float = 0.1) -> np.ndarray:
    """Per item: A (0) or B (1) when that response is longer by the given share, else NO_LONGER (-1).

    Near-equal lengths say nothing about verbosity, so they are left out of the verbosity statistics.
    """
    a = np.asarray(length_a, dtype=np.float64)
    b = np.asarray(length_b, dtype=np.float64)
    factor = 1.0 + min_relative_difference
    out = np.full(a.shape, NO_LONGER, dtype=np.int64)
    out[(a > b) & (a >= b * factor)] = A
    out[(b > a) & (b >= a * factor)] = B
    return out
