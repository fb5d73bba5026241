"""The annotator rules of FlagRules: effect size and evidence together, each annotator against their peers.

A rule raises a flag only where the effect is one a lead would call a problem (a gap to the peers, a left share
outside a band) and then grades the evidence for it: strong (p under the rule's alpha, with enough judgments)
warns, weaker (p under watch_alpha) watches. Peers are the batch's other annotators, pooled. Returns plain
tuples; rewards.metrics.flags turns them into Flag objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rewards.metrics.annotators import AnnotatorStats
from rewards.metrics.stats import fisher_less_p, holm

if TYPE_CHECKING:
    from rewards.metrics.flags import FlagRules
    from rewards.metrics.report import BatchReport

# (level, code, annotator index, message, value, threshold)
RawFlag = tuple[str, str, int, str, float, float]


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def _p(value: float) -> str:
    """A p-value for a message, with its relation: "= 0.0067" or "< 0.001"."""
    return "< 0.001" if value < 0.001 else f"= {value:.2g}"


def _counts(stats: list[AnnotatorStats], attribute: str) -> tuple[np.ndarray, np.ndarray]:
    successes = np.array([getattr(s, attribute).successes for s in stats], dtype=np.float64)
    n = np.array([getattr(s, attribute).n for s in stats], dtype=np.int64)
    return successes, n


def _peers(successes: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per annotator, the other annotators pooled: (successes, n, share; NaN where the peers have nothing)."""
    peer_x = successes.sum() - successes
    peer_n = n.sum() - n
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(peer_n > 0, peer_x / peer_n, np.nan)
    return peer_x, peer_n, share


def _adjust(p: np.ndarray, how: str) -> np.ndarray:
    """One rule's p-values over the annotators (NaN = not tested), Holm-adjusted when asked."""
    tested = ~np.isnan(p)
    if how != "holm" or not tested.any():
        return p
    out = p.copy()
    out[tested] = holm(p[tested])
    return out


def _level(p: float, alpha: float, rules: FlagRules, *, enough: bool = True) -> str | None:
    if np.isnan(p):
        return None
    if enough and p < alpha:
        return "warn"
    if rules.watch_alpha is not None and p < rules.watch_alpha:
        return "watch"
    return None


def annotator_flags(report: BatchReport, rules: FlagRules) -> list[RawFlag]:
    stats = report.annotators
    if not stats:
        return []
    flags: list[RawFlag] = []
    how = rules.multiple_testing

    # Gold accuracy and agreement with the consensus, each against the peers pooled: one-sided Fisher tests.
    gold_x, gold_n = _counts(stats, "gold_accuracy")
    gold_px, gold_pn, gold_peers = _peers(gold_x, gold_n)
    gold_p = _adjust(np.where(gold_n > 0, fisher_less_p(gold_x, gold_n, gold_px, gold_pn), np.nan), how)
    agree_x, agree_n = _counts(stats, "consensus_agreement")
    agree_px, agree_pn, agree_peers = _peers(agree_x, agree_n)
    agree_p = _adjust(np.where(agree_n > 0, fisher_less_p(agree_x, agree_n, agree_px, agree_pn), np.nan), how)
    left_x, left_n = _counts(stats, "left_share")
    _, _, left_peers = _peers(left_x, left_n)
    left_p = _adjust(np.array([np.nan if s.left_p_value is None else s.left_p_value for s in stats]), how)
    by_consensus = rules.verbosity_reference == "consensus"
    verbosity_p = _adjust(
        np.array(
            [
                np.nan if (p := s.longer_excess_p_value if by_consensus else s.longer_p_value) is None else p
                for s in stats
            ]
        ),
        how,
    )
    drift = _drift_p_values(report, rules)
    medians = np.array([np.nan if s.median_seconds is None else s.median_seconds for s in stats])

    for i, s in enumerate(stats):
        a = s.annotator

        gold = s.gold_accuracy
        if (
            gold.value is not None
            and gold.value < rules.gold_accuracy_warn
            and not np.isnan(gold_peers[i])
            and gold_peers[i] - gold.value >= rules.peer_min_gap
        ):
            level = _level(gold_p[i], rules.gold_alpha, rules, enough=gold.n >= rules.gold_min_items)
            if level:
                message = (
                    f"gold accuracy {_pct(gold.value)} on {gold.n} gold items, peers {_pct(gold_peers[i])}"
                    f" (Fisher p {_p(gold_p[i])})"
                )
                flags.append((level, "gold_low", a, message, gold.value, rules.gold_accuracy_warn))

        agreement = s.consensus_agreement
        if (
            agreement.value is not None
            and not np.isnan(agree_peers[i])
            and agree_peers[i] - agreement.value >= rules.peer_min_gap
        ):
            level = _level(agree_p[i], rules.peer_alpha, rules, enough=agreement.n >= rules.min_consensus_items)
            if level:
                kappa = s.consensus_kappa.value
                message = (
                    f"agrees with the others' consensus on {_pct(agreement.value)} of {agreement.n} regular items,"
                    f" peers {_pct(agree_peers[i])}"
                    + (f" (κ {kappa:.2f}; Fisher p {_p(agree_p[i])})" if kappa is not None else "")
                )
                flags.append((level, "below_peers", a, message, agreement.value, agree_peers[i] - rules.peer_min_gap))

        kappa = s.consensus_kappa
        if (
            rules.annotator_kappa_warn is not None
            and kappa.value is not None
            and kappa.n >= rules.min_consensus_items
            and kappa.value < rules.annotator_kappa_warn
        ):
            message = (
                f"kappa against the others' consensus {kappa.value:.2f} over {kappa.n} regular items"
                f" is below {rules.annotator_kappa_warn}"
            )
            flags.append(("warn", "consensus_kappa_low", a, message, kappa.value, rules.annotator_kappa_warn))

        flags += _drift_flags(rules, drift, a)

        left = s.left_share
        low, high = rules.position_band
        if (
            left.value is not None
            and not low <= left.value <= high
            and (np.isnan(left_peers[i]) or abs(left.value - left_peers[i]) >= rules.position_min_gap_to_peers)
        ):
            level = _level(left_p[i], rules.position_alpha, rules)
            if level:
                peers = "" if np.isnan(left_peers[i]) else f", peers {_pct(left_peers[i])}"
                message = (
                    f"picked the response shown left in {_pct(left.value)} of {left.n} a/b choices{peers}"
                    f" (p {_p(left_p[i])})"
                )
                flags.append((level, "position_bias", a, message, left.value, high if left.value > high else low))

        flags += _verbosity_flag(s, rules, verbosity_p[i], by_consensus)
        flags += _speed_flags(s, rules, report.min_seconds, np.delete(medians, i))
    return flags


_DRIFT = (
    ("gold_drop", "gold_accuracy", "gold_min_items", "gold accuracy"),
    ("consensus_drop", "consensus_agreement", "min_consensus_items", "agreement with the consensus"),
)


def _drift_p_values(report: BatchReport, rules: FlagRules) -> dict[str, dict[int, tuple[object, float]]]:
    """Per drop rule: annotator -> (their ProportionChange, p adjusted over the annotators tested)."""
    out = {}
    for code, attribute, minimum, _ in _DRIFT:
        tested = [
            (d.annotator, change)
            for d in report.drift
            if (change := getattr(d, attribute)).p_value is not None
            and min(change.current.n, change.baseline.n) >= getattr(rules, minimum)
        ]
        p = _adjust(np.array([c.p_value for _, c in tested], dtype=np.float64), rules.drift_multiple_testing)
        out[code] = {a: (change, float(p[k])) for k, (a, change) in enumerate(tested)}
    return out


def _drift_flags(rules: FlagRules, drift: dict[str, dict[int, tuple[object, float]]], a: int) -> list[RawFlag]:
    """Alarms for a drop against the annotator's own baseline (earlier batches)."""
    out: list[RawFlag] = []
    for code, _, _, what in _DRIFT:
        if a not in drift[code]:
            continue
        change, p = drift[code][a]
        if p < rules.drift_alpha and change.drop >= rules.drift_min_drop:
            message = (
                f"{what} fell from {_pct(change.baseline.value)} to {_pct(change.current.value)} (Fisher p {_p(p)})"
            )
            out.append(("alarm", code, a, message, change.drop, rules.drift_min_drop))
    return out


def _verbosity_flag(s: AnnotatorStats, rules: FlagRules, p: float, by_consensus: bool) -> list[RawFlag]:
    if by_consensus:
        diff = s.longer_excess_diff
        if diff is None or abs(diff) < rules.verbosity_min_excess:
            return []
        level = _level(p, rules.verbosity_alpha, rules)
        if not level:
            return []
        message = (
            f"picks the {'longer' if diff > 0 else 'shorter'} response {_pct(abs(diff))} more often than"
            f" the others' consensus on the same items (p {_p(p)})"
        )
        return [(level, "verbosity_bias", s.annotator, message, diff, rules.verbosity_min_excess * np.sign(diff))]
    longer = s.longer_share
    low, high = rules.verbosity_band
    if longer.value is None or low <= longer.value <= high:
        return []
    level = _level(p, rules.verbosity_alpha, rules)
    if not level:
        return []
    message = f"picked the longer response in {_pct(longer.value)} of {longer.n} a/b choices (p {_p(p)})"
    return [(level, "verbosity_bias", s.annotator, message, longer.value, high if longer.value > high else low)]


def _speed_flags(s: AnnotatorStats, rules: FlagRules, min_seconds: float, peer_medians: np.ndarray) -> list[RawFlag]:
    out: list[RawFlag] = []
    share = s.too_fast / s.n_judgments
    for level, threshold in (("warn", rules.too_fast_share_warn), ("watch", rules.too_fast_share_watch)):
        if threshold is not None and share > threshold:
            message = (
                f"{s.too_fast} of {s.n_judgments} judgments ({_pct(share)}) took less than the project minimum"
                f" of {min_seconds:g} s"
            )
            out.append((level, "too_fast", s.annotator, message, share, threshold))
            break
    peer_medians = peer_medians[~np.isnan(peer_medians)]
    if (
        rules.pace_watch_ratio is not None
        and s.median_seconds is not None
        and peer_medians.size
        and s.n_judgments >= rules.min_consensus_items
    ):
        peers = float(np.median(peer_medians))
        if s.median_seconds < rules.pace_watch_ratio * peers:
            message = (
                f"median {s.median_seconds:.0f} s per judgment, under {_pct(rules.pace_watch_ratio)} of the"
                f" peers' {peers:.0f} s ({s.too_fast} under the project minimum of {min_seconds:g} s)"
            )
            out.append(("watch", "fast_pace", s.annotator, message, s.median_seconds, rules.pace_watch_ratio * peers))
    return out
