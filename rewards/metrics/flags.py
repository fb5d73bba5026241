"""Which statistic flags what, at which level: the one place a project's thresholds live."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rewards.metrics.annotator_flags import annotator_flags
from rewards.metrics.report import BatchReport

Level = Literal["watch", "warn", "alarm"]
LEVEL_ORDER = {"alarm": 0, "warn": 1, "watch": 2}


@dataclass(frozen=True)
class FlagRules:
    """Thresholds a lead can change per project (FlagRules.from_dict(project_settings)).

    Levels: "alarm" (act now), "warn" (a real problem, with strong evidence) and "watch" (a large effect with
    little evidence yet: few judgments, or a weaker test). An annotator rule needs an effect a lead would call a
    problem AND evidence for it, and compares the annotator with their peers (the batch's other annotators,
    pooled), not only with a fixed number. Evidence is a p-value: below the rule's alpha warns, below
    watch_alpha (and not below alpha) watches; watch_alpha None turns every watch off.

    Batch rules:

    - batch_kappa (alarm below batch_kappa_alarm, else warn below batch_kappa_warn): Cohen's kappa on regular
      items, mean over annotator pairs weighted by shared items.
    - batch_agreement (warn): raw percent agreement on regular items below batch_agreement_warn.
    - recalibrate (warn): more than new_annotator_share of the batch's annotators have no judgment in the
      baseline. Not checked on a first batch (no baseline).
    - label_shift / criteria_shift (warn): chi-square p < label_shift_alpha AND Cramér's V >=
      label_shift_min_cramers_v, batch against baseline / criteria version against version.

    Annotator rules (see rewards.metrics.annotator_flags):

    - gold_low: gold accuracy below gold_accuracy_warn AND at least peer_min_gap under the peers' pooled gold
      accuracy, with one-sided Fisher p (them against the peers) < gold_alpha over at least gold_min_items gold
      items (warn), or < watch_alpha (watch). Compared with peers so that a hard gold set is not blamed on people.
    - below_peers: agreement with the others' consensus (regular items) at least peer_min_gap under the peers'
      pooled agreement, one-sided Fisher p < peer_alpha over at least min_consensus_items items (warn), or <
      watch_alpha (watch). Catches the annotator who answers at random on part of the items.
    - consensus_kappa_low (warn): kappa against the consensus below annotator_kappa_warn over at least
      min_consensus_items items: an absolute floor beside the peer comparison. None disables it.
    - gold_drop / consensus_drop (alarm): one-sided Fisher exact p < drift_alpha that the batch's proportion is
      below their baseline's, AND a drop of at least drift_min_drop, with at least gold_min_items (gold) or
      min_consensus_items (consensus) on each side. Their p-values are Holm-adjusted over the batch's annotators
      (drift_multiple_testing): an alarm must keep the chance of any false one per batch under drift_alpha.
    - position_bias: left share among a/b choices outside position_band AND at least position_min_gap_to_peers
      from the peers' left share (a lean everyone shares is the page's, not a person's), binomial p against 1/2
      < position_alpha (warn) or < watch_alpha (watch). Sides are randomised, so 1/2 is the right null.
    - verbosity_bias: with verbosity_reference "consensus" (default), |their longer share - the consensus's on
      the same judgments| >= verbosity_min_excess, exact McNemar p < verbosity_alpha (warn) or < watch_alpha
      (watch). Longer answers are often better, so a crowd preferring them is not one annotator's bias. With
      "even", the longer share itself outside verbosity_band, binomial p against 1/2.
    - too_fast: share of judgments under the project's minimum seconds above too_fast_share_warn (warn), or
      above too_fast_share_watch (watch). None disables that level.
    - fast_pace (watch): median seconds under pace_watch_ratio times the median of the peers' medians, over at
      least min_consensus_items judgments. Speed is no fault by itself; with a low agreement it explains it.

    The defaults are calibrated on simulated crowds (tests/rewards/test_flag_defaults.py, 50 seeds of 10
    annotators): honest annotators get a warning in under 2 % of annotator-runs, while a 70 %-left annotator and
    one answering at random on 40 % of 150 judgments are warned in at least 45 and 40 of 50 runs. p-values are
    per annotator (multiple_testing "none"): each honest annotator runs the same small risk of a false warning
    however large the crowd (so a crowd of 200 sees one or two a batch), and the effect sizes keep thousands of
    judgments from flagging a trivial difference. "holm" adjusts each rule's p-values over the batch's
    annotators first: no false warning per batch and rule with chance 1 - alpha, at the cost of missing more
    (at 10 annotators it warns the 70 %-left annotator in 42 of 50 runs instead of 50).
    """

    batch_kappa_warn: float = 0.6
    batch_kappa_alarm: float = 0.4
    batch_agreement_warn: float = 0.7
    new_annotator_share: float = 0.3
    label_shift_alpha: float = 0.01
    label_shift_min_cramers_v: float = 0.1
    gold_accuracy_warn: float = 0.7
    gold_min_items: int = 10
    gold_alpha: float = 0.005
    annotator_kappa_warn: float | None = 0.4
    min_consensus_items: int = 30
    peer_min_gap: float = 0.1
    peer_alpha: float = 0.005
    drift_alpha: float = 0.01
    drift_min_drop: float = 0.1
    position_alpha: float = 0.005
    position_band: tuple[float, float] = (0.4, 0.6)
    position_min_gap_to_peers: float = 0.1
    verbosity_reference: Literal["consensus", "even"] = "consensus"
    verbosity_alpha: float = 0.005
    verbosity_min_excess: float = 0.1
    verbosity_band: tuple[float, float] = (0.4, 0.6)
    too_fast_share_warn: float | None = 0.2
    too_fast_share_watch: float | None = 0.1
    pace_watch_ratio: float | None = 0.5
    watch_alpha: float | None = 0.05
    multiple_testing: Literal["holm", "none"] = "none"
    drift_multiple_testing: Literal["holm", "none"] = "holm"

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


# Each rule in a line, for the form a lead edits them in (rewards/admin.py): what it is and what moving it does.
FLAG_RULE_HELP: dict[str, str] = {
    "batch_kappa_warn": "Batch: warn when Cohen's kappa (regular items) is below this.",
    "batch_kappa_alarm": "Batch: alarm when Cohen's kappa is below this.",
    "batch_agreement_warn": "Batch: warn when raw percent agreement is below this.",
    "new_annotator_share": "Batch: warn (recalibrate) when more than this share of annotators are new to the project.",
    "label_shift_alpha": "Batch: p-value under which a change in the label mix against earlier batches counts.",
    "label_shift_min_cramers_v": "Batch: smallest Cramér's V for a label or criteria shift to be flagged.",
    "gold_accuracy_warn": "Annotator: gold accuracy under this (and under the peers') is flagged.",
    "gold_min_items": "Annotator: fewest gold items before gold accuracy is judged.",
    "gold_alpha": "Annotator: evidence (p-value) needed to warn on low gold accuracy.",
    "annotator_kappa_warn": "Annotator: warn when kappa against the consensus is below this (empty: off).",
    "min_consensus_items": "Annotator: fewest regular items before agreement with the consensus is judged.",
    "peer_min_gap": "Annotator: how far under the peers an annotator must be to be flagged.",
    "peer_alpha": "Annotator: evidence (p-value) needed to warn on agreement below the peers.",
    "drift_alpha": "Annotator: evidence needed to raise a drop alarm against their own earlier batches.",
    "drift_min_drop": "Annotator: smallest drop (gold accuracy or agreement) that raises a drop alarm.",
    "position_alpha": "Annotator: evidence needed to warn on a left/right lean.",
    "position_band": "Annotator: left shares inside this range are never a position bias.",
    "position_min_gap_to_peers": "Annotator: how far from the peers' left share a lean must be.",
    "verbosity_reference": "Annotator: length preference compared with the consensus, or with an even split.",
    "verbosity_alpha": "Annotator: evidence needed to warn on a length preference.",
    "verbosity_min_excess": "Annotator: smallest difference from the consensus in picking the longer response.",
    "verbosity_band": "Annotator (even reference only): longer shares inside this range are never a length bias.",
    "too_fast_share_warn": "Annotator: warn when more than this share of judgments is under the minimum time (empty: off).",
    "too_fast_share_watch": "Annotator: watch when more than this share is under the minimum time (empty: off).",
    "pace_watch_ratio": "Annotator: watch when their median time is under this times the peers' (empty: off).",
    "watch_alpha": "Any rule: evidence for the 'watch' level, a large effect on few judgments (empty: no watch).",
    "multiple_testing": "Warnings: 'none' keeps each annotator's own risk; 'holm' adjusts over the batch's annotators.",
    "drift_multiple_testing": "Drop alarms: 'holm' keeps the chance of any false alarm per batch under drift_alpha.",
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


# What each flag means, in a line a lead reads on the page (not only on hover).
FLAG_MEANINGS: dict[str, str] = {
    "batch_kappa": "Annotators agree little beyond chance on this batch's regular items (Cohen's κ).",
    "batch_agreement": "Raw agreement between annotators on regular items is low.",
    "recalibrate": "Many annotators are new to this project: recalibrate them on gold items (a qualification set).",
    "label_shift": "The mix of answers (a, b, tie, both bad) changed from earlier batches.",
    "criteria_shift": "The mix of answers differs between criteria versions.",
    "gold_low": "Misses gold items (known answers) more often than the other annotators.",
    "below_peers": "Agrees with the other annotators' majority less often than the others do.",
    "consensus_kappa_low": "Agrees with the other annotators' majority little beyond chance (κ).",
    "gold_drop": "Gold accuracy fell against this annotator's own earlier batches.",
    "consensus_drop": "Agreement with the others fell against this annotator's own earlier batches.",
    "position_bias": "Picks the response shown on the left (or right) more than chance and than the others.",
    "verbosity_bias": "Picks the longer (or shorter) response more often than the others on the same items.",
    "too_fast": "Many judgments took less than the project's minimum time.",
    "fast_pace": "Works much faster than the other annotators: worth a look beside their agreement.",
}
LEVEL_MEANINGS: dict[str, str] = {
    "alarm": "act now",
    "warn": "a problem, with strong evidence",
    "watch": "a large effect on few judgments or weak evidence: look again as more judgments arrive",
}


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
    flags = _batch_flags(report, rules) + [
        Flag(level, code, "annotator", a, f"{name(a)}: {message}", float(value), float(threshold))
        for level, code, a, message, value, threshold in annotator_flags(report, rules)
    ]
    flags.sort(key=lambda f: (f.subject != "batch", -1 if f.annotator is None else f.annotator, LEVEL_ORDER[f.level]))
    return flags
