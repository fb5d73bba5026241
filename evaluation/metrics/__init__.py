"""The statistics of checkpoint evaluation: functions of NumPy arrays, no Django (selectors build the arrays).

Win rates and rates with a bootstrap clustered by prompt (bootstrap.py), the length-controlled win rate
(length.py), Bradley-Terry ratings (bradley_terry.py) and the checkpoint flags (flags.py).
"""

from .bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    Estimate,
    cluster_draws,
    cluster_index,
    mean_estimate,
    rate,
    win_rate,
    win_rates_by,
)
from .bradley_terry import ELO_SCALE, Ratings, bradley_terry, bradley_terry_bootstrap, to_elo, win_probability
from .flags import DEFAULT_THRESHOLDS, flags, spearman
from .length import LengthControlled, length_controlled_win_rate

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_RESAMPLES",
    "DEFAULT_THRESHOLDS",
    "ELO_SCALE",
    "Estimate",
    "LengthControlled",
    "Ratings",
    "bradley_terry",
    "bradley_terry_bootstrap",
    "cluster_draws",
    "cluster_index",
    "flags",
    "length_controlled_win_rate",
    "mean_estimate",
    "rate",
    "spearman",
    "to_elo",
    "win_probability",
    "win_rate",
    "win_rates_by",
]
