"""The demo history (demo/data/history.py) as rewards.metrics arrays, from the same plan seed_demo writes."""

from __future__ import annotations

import numpy as np

from demo.data.history import SIM_ANNOTATORS, history_lines, plan_votes
from rewards.metrics import Judgments, longer_side

LABEL = {"a": 0, "b": 1, "tie": 2, "both_bad": 3}
# The demo project's settings (annotation.models.Project defaults, criteria's default tie rule).
PROJECT = {"overlap": 3, "max_overlap": 5, "min_agreement": 0.6, "tie_rule": "ignore_ties"}


def demo_history_judgments() -> tuple[Judgments, list[str]]:
    """The history batch's judgments in the order they were planned, and the annotators' usernames by index."""
    lines = history_lines()
    votes, _ = plan_votes(lines, **PROJECT)
    index = {line["id"]: i for i, line in enumerate(lines)}
    names = [a.username for a in SIM_ANNOTATORS]
    judgments = Judgments(
        item=np.array([index[v.item_id] for v in votes]),
        annotator=np.array([names.index(v.annotator) for v in votes]),
        label=np.array([LABEL[v.choice] for v in votes]),
        n_items=len(lines),
        n_annotators=len(names),
        seconds=np.array([v.seconds for v in votes]),
        shown_left=np.array([v.shown_left == "a" for v in votes]),
        gold=np.array([LABEL.get(line.get("gold", ""), -1) for line in lines]),
        longer=longer_side(
            [len(line["response_a"]["text"]) for line in lines], [len(line["response_b"]["text"]) for line in lines]
        ),
    )
    return judgments, names
