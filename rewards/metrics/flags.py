"""Which statistic flags what, at which level: the one place a project's thresholds live."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rewards.metrics.report import BatchReport
from rewards.metrics.stats import holm

Level = Literal["warn", "alarm"]


@dataclass(frozen=True)
class FlagRules:
    """Thresholds a lead can change per project (FlagRules.from_dict(project_settings)).

    Every rule, its statistic and its level:

    - batch_kappa (batch; alarm below batch_kappa_alarm, else warn below batch_kappa_warn): Cohen's
      kappa, mean over annotator pairs weighted by shared items.
    - batch_agreement (batch; warn): raw percent agreement below batch_agreement_warn.
    - recalibrate (batch; warn): more than new_annotator_share of the batch's annotators have no
      judgment in the baseline. Not checked on a first batch (no baseline).
    - label_shift / criteria_shift (batch; warn): chi-square p < label_shift_alpha AND Cramér's V >=
      label_shift_min_cramers_v, batch against baseline / criteria version against version.
    - gold_low (annotator; warn): gold accuracy below gold_accuracy_warn once they answered at least
      gold_min_items gold items in the batch. A point estimate: at 10 items an annotator who is right
      90 % of the time still falls under 0.7 about 7 % of the time; raise gold_min_items to quieten it.
    - consensus_kappa_low (annotator; warn): kappa against the leave-one-out consensus below
      annotator_kappa_warn over at least min_consensus_items items. None disables it.
    - gold_drop / consensus_drop (annotator; alarm): one-sided Fisher exact p < drift_alpha that the
      batch's proportion is below their baseline's, AND a drop of at least drift_min_drop (so that a
      statistically significant but trivial change over many judgments is not flagged), with at least
      gold_min_items (gold) or min_consensus_items (consensus) on each side.
    - position_bias (annotator; warn): left share among a/b choices with binomial p < position_alpha
      AND outside position_band. Sides are randomised, so 1/2 is the right null.
    - verbosity_bias (annotator; warn): with verbosity_reference "consensus" (default), the exact
      McNemar p (their pick of the longer response against the others' consensus on the same judgments)
      < verbosity_alpha AND |their longer share - the consensus's| >= verbosity_min_excess. Longer
      answers are often better, so a crowd preferring them is not one annotator's bias. With "even", the
      longer share itself against 1/2: p < verbosity_alpha AND outside verbosity_band.
    - too_fast (annotator; warn): share of judgments under the project's minimum seconds above
      too_fast_share_warn. None disables it.

    Annotator p-values are compared with their alpha after a Holm adjustment over the batch's annotators
    tested by that rule (multiple_testing="holm"; "none" compares raw p-values). Without it, 200
    annotators tested at 0.01 flag two innocent annotators per batch on average; the adjustment keeps
    the chance of any false flag per rule and batch under alpha. Messages quote the adjusted p.
    """

    batch_kappa_warn: float = 0.6
    batch_kappa_alarm: float = 0.4
    batch_agreement_warn: float = 0.7
    new_annotator_share: float = 0.3
    label_shift_alpha: float = 0.01
    label_shift_min_cramers_v: float = 0.1
    gold_accuracy_warn: float = 0.7
    gold_min_items: int = 10
    annotator_kappa_warn: float | None = 0.4
    min_consensus_items: int = 30
    drift_alpha: float = 0.01
    drift_min_drop: float = 0.1
    position_alpha: float = 0.001
    position_band: tuple[float, float] = (0.4, 0.6)
    verbosity_reference: Literal["consensus", "even"] = "consensus"
    verbosity_alpha: float = 0.001
    verbosity_min_excess: float = 0.1
    verbosity_band: tuple[float, float] = (0.4, 0.6)
    too_fast_share_warn: float | None = 0.2
    multiple_testing: Literal["holm", "none"] = "holm"

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> FlagRules:
        """Defaults overridden by `values`; an unknown name raises ValueError (a typo must not pass silently)."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown flag rules: {', '.join(sorted(unknown))}")
        values = dict(values)
        for band in ("position_band", "verbosity_band"):
            if band in values:
                values[band] = tuple(values[band])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(self).items()
        }


@dataclass(frozen=True)
class Flag:
    level: Level
    code: str
    subject: Literal["batch", "annotator"]
    annotator: int | None
    message: str
    value: float
    threshold: float

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def _adjusted(p_values: dict[int, float], how: str) -> dict[int, float]:
    """p-values of one rule's family (annotator -> p), adjusted for testing them all."""
    if how == "none" or not p_values:
        return p_values
    adjusted = holm(np.fromiter(p_values.values(), dtype=np.float64, count=len(p_values)))
    return dict(zip(p_values, adjusted.tolist(), strict=True))


def _batch_flags(report: BatchReport, rules: FlagRules) -> list[Flag]:
    flags: list[Flag] = []

    def add(level: Level, code: str, message: str, value: float, threshold: float) -> None:
        flags.append(Flag(level, code, "batch", None, message, float(value), float(threshold)))

    kappa = report.cohen_kappa.value
    if kappa is not None and kappa < rules.batch_kappa_warn:
        alarm = kappa < rules.batch_kappa_alarm
        threshold = rules.batch_kappa_alarm if alarm else rules.batch_kappa_warn
        add(
            "alarm" if alarm else "warn",
            "batch_kappa",
            f"Cohen's kappa {kappa:.2f} is below {threshold}",
            kappa,
            threshold,
        )
    agreement = report.agreement.value
    if agreement is not None and agreement < rules.batch_agreement_warn:
        message = f"raw agreement {_pct(agreement)} is below {_pct(rules.batch_agreement_warn)}"
        add("warn", "batch_agreement", message, agreement, rules.batch_agreement_warn)
    new = report.new_annotators
    if new is not None and new.value is not None and new.value > rules.new_annotator_share:
        message = f"{int(new.successes)} of {new.n} annotators are new ({_pct(new.value)}): recalibrate on gold items"
        add("warn", "recalibrate", message, new.value, rules.new_annotator_share)
    for code, shift, what in (
        ("label_shift", report.label_shift, "from earlier batches"),
        ("criteria_shift", report.criteria_shift, "between criteria versions"),
    ):
        if shift is None or shift.p_value is None or shift.cramers_v is None:
            continue
        if shift.p_value < rules.label_shift_alpha and shift.cramers_v >= rules.label_shift_min_cramers_v:
            message = (
                f"label shares differ {what} (chi-square p = {shift.p_value:.1g}, Cramér's V {shift.cramers_v:.2f})"
            )
            add("warn", code, message, shift.cramers_v, rules.label_shift_min_cramers_v)
    return flags


def _annotator_flags(report: BatchReport, rules: FlagRules, name: Callable[[int], str]) -> list[Flag]:
    flags: list[Flag] = []

    def add(level: Level, code: str, a: int, message: str, value: float, threshold: float) -> None:
        flags.append(Flag(level, code, "annotator", a, f"{name(a)}: {message}", float(value), float(threshold)))

    # Families of tests, one per rule: collect the raw p-values, adjust them together.
    drift = {d.annotator: d for d in report.drift}
    gold_drop = {
        a: d.gold_accuracy.p_value
        for a, d in drift.items()
        if d.gold_accuracy.p_value is not None
        and min(d.gold_accuracy.current.n, d.gold_accuracy.baseline.n) >= rules.gold_min_items
    }
    consensus_drop = {
        a: d.consensus_agreement.p_value
        for a, d in drift.items()
        if d.consensus_agreement.p_value is not None
        and min(d.consensus_agreement.current.n, d.consensus_agreement.baseline.n) >= rules.min_consensus_items
    }
    position = {s.annotator: s.left_p_value for s in report.annotators if s.left_p_value is not None}
    by_consensus = rules.verbosity_reference == "consensus"
    verbosity = {
        s.annotator: p
        for s in report.annotators
        if (p := s.longer_excess_p_value if by_consensus else s.longer_p_value) is not None
    }
    how = rules.multiple_testing
    gold_drop, consensus_drop = _adjusted(gold_drop, how), _adjusted(consensus_drop, how)  # type: ignore[arg-type]
    position, verbosity = _adjusted(position, how), _adjusted(verbosity, how)  # type: ignore[arg-type]

    for s in report.annotators:
        a = s.annotator
        gold = s.gold_accuracy
        if gold.value is not None and gold.n >= rules.gold_min_items and gold.value < rules.gold_accuracy_warn:
            message = (
                f"gold accuracy {_pct(gold.value)} on {gold.n} gold items is below {_pct(rules.gold_accuracy_warn)}"
            )
            add("warn", "gold_low", a, message, gold.value, rules.gold_accuracy_warn)
        kappa = s.consensus_kappa
        if (
            rules.annotator_kappa_warn is not None
            and kappa.value is not None
            and kappa.n >= rules.min_consensus_items
            and kappa.value < rules.annotator_kappa_warn
        ):
            message = (
                f"kappa against the others' consensus {kappa.value:.2f} over {kappa.n} items"
                f" is below {rules.annotator_kappa_warn}"
            )
            add("warn", "consensus_kappa_low", a, message, kappa.value, rules.annotator_kappa_warn)
        for code, family, what, attribute in (
            ("gold_drop", gold_drop, "gold accuracy", "gold_accuracy"),
            ("consensus_drop", consensus_drop, "agreement with the consensus", "consensus_agreement"),
        ):
            if a not in family:
                continue
            change = getattr(drift[a], attribute)
            if family[a] < rules.drift_alpha and change.drop >= rules.drift_min_drop:
                message = (
                    f"{what} fell from {_pct(change.baseline.value)} to {_pct(change.current.value)}"
                    f" (Fisher p = {family[a]:.1g})"
                )
                add("alarm", code, a, message, change.drop, rules.drift_min_drop)
        left = s.left_share
        low, high = rules.position_band
        if a in position and position[a] < rules.position_alpha and not low <= left.value <= high:
            message = (
                f"picked the response shown left in {_pct(left.value)} of {left.n} a/b choices (p = {position[a]:.1g})"
            )
            add("warn", "position_bias", a, message, left.value, high if left.value > high else low)
        if a in verbosity and verbosity[a] < rules.verbosity_alpha:
            if by_consensus and abs(s.longer_excess_diff) >= rules.verbosity_min_excess:
                diff = s.longer_excess_diff
                message = (
                    f"picks the {'longer' if diff > 0 else 'shorter'} response {_pct(abs(diff))} more often than"
                    f" the others' consensus on the same items (p = {verbosity[a]:.1g})"
                )
                add("warn", "verbosity_bias", a, message, diff, rules.verbosity_min_excess * (1 if diff > 0 else -1))
            low, high = rules.verbosity_band
            longer = s.longer_share
            if not by_consensus and not low <= longer.value <= high:
                message = f"picked the longer response in {_pct(longer.value)} of {longer.n} a/b choices (p = {verbosity[a]:.1g})"
                add("warn", "verbosity_bias", a, message, longer.value, high if longer.value > high else low)
        share = s.too_fast / s.n_judgments
        if rules.too_fast_share_warn is not None and share > rules.too_fast_share_warn:
            message = f"{s.too_fast} of {s.n_judgments} judgments ({_pct(share)}) were faster than the project minimum"
            add("warn", "too_fast", a, message, share, rules.too_fast_share_warn)
    return flags


def flags_for(
    report: BatchReport, *, rules: FlagRules | None = None, names: Sequence[str] | Callable[[int], str] | None = None
) -> list[Flag]:
    """The flags the rules raise on a batch report: batch flags first, then by annotator; alarms first.

    names maps an annotator index to the name used in messages (default "annotator 7").
    """
    rules = rules or FlagRules()
    if names is None:
        name: Callable[[int], str] = "annotator {}".format
    elif callable(names):
        name = names
    else:
        name = names.__getitem__
    flags = _batch_flags(report, rules) + _annotator_flags(report, rules, name)
    order = {"alarm": 0, "warn": 1}
    flags.sort(key=lambda f: (f.subject != "batch", -1 if f.annotator is None else f.annotator, order[f.level]))
    return flags
