"""Per-dimension reward-model accuracy (evaluation.handoff_metrics) against a hand computation on six pairs."""

import numpy as np
import pytest

from evaluation.handoff_metrics import dimension_accuracy, dimension_side, group_accuracy

# Six validation pairs. Scores: the model ranks the chosen answer higher on pairs 0, 1, 3 and 5, lower on 2 and 4
# (pair 5 is a score tie: ½).
CHOSEN = [2.0, 1.0, 0.0, 3.0, -1.0, 0.5]
REJECTED = [1.0, 0.0, 1.0, 2.0, 0.0, 0.5]
SIDES = ["a", "b", "a", "b", "a", "a"]  # which response each pair's chosen answer was
HELPFUL = [
    {"a": 2, "b": 1},  # prefers a = chosen: agrees
    {"b": 3},  # b = chosen: agrees
    {"b": 2, "a": 1},  # b, chosen a: disagrees (the model scored b higher: right by this dimension)
    {"tie": 3},  # level: neither agrees nor counts as rated
    None,  # not rated
    {"a": 1, "b": 1, "tie": 1},  # level
]
HARMLESS = [{"a": 3}, {"a": 3}, {"a": 3}, {"a": 3}, {"a": 3}, {"a": 3}]  # always a


def test_dimension_accuracy_matches_the_hand_computation():
    result = dimension_accuracy(
        chosen_scores=CHOSEN,
        rejected_scores=REJECTED,
        chosen_sides=SIDES,
        dimension_votes={"helpful": HELPFUL, "harmless": HARMLESS},
    )
    helpful = result["helpful"]
    # Agreeing pairs: 0 (right) and 1 (right): 2/2.
    assert helpful["n_agreeing"] == 2 and helpful["agreeing_accuracy"] == pytest.approx(1.0)
    # Rated with a side: 0, 1, 2. Against the dimension's side: 0 right, 1 right, 2 (dimension b = rejected, and
    # the rejected answer scored higher) right: 3/3.
    assert helpful["n_rated"] == 3 and helpful["rated_accuracy"] == pytest.approx(1.0)
    assert helpful["n_disagreeing"] == 1 and helpful["n_tied"] == 2
    harmless = result["harmless"]
    # Agreeing: the pairs whose chosen side is a: 0 (1), 2 (0), 4 (0), 5 (½) -> 1.5 / 4.
    assert harmless["n_agreeing"] == 4 and harmless["agreeing_accuracy"] == pytest.approx(1.5 / 4)
    # Rated: all six against side a: pairs 0 1, 2 0, 4 0, 5 ½ (chosen a); 1 and 3 (chosen b, model prefers the
    # chosen b, so a scored lower): 0 each -> 1.5 / 6.
    assert harmless["n_rated"] == 6 and harmless["rated_accuracy"] == pytest.approx(1.5 / 6)
    assert harmless["n_disagreeing"] == 2


def test_a_dimension_nobody_rated_has_no_accuracy():
    result = dimension_accuracy(
        chosen_scores=np.array([1.0]),
        rejected_scores=np.array([0.0]),
        chosen_sides=["a"],
        dimension_votes={"x": [None]},
    )
    assert result["x"]["agreeing_accuracy"] is None and result["x"]["rated_accuracy"] is None


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        dimension_accuracy(chosen_scores=[1.0], rejected_scores=[0.0], chosen_sides=["a"], dimension_votes={"x": []})


def test_dimension_side_and_group_accuracy():
    assert dimension_side({"a": 1, "b": 2}) == "b" and dimension_side({"na": 0}) is None
    assert dimension_side({"tie": 1}) == "tie"
    groups = group_accuracy(chosen_scores=CHOSEN, rejected_scores=REJECTED, groups=["u", "u", "r", "r", "u", "r"])
    assert groups == {
        "r": {"accuracy": pytest.approx(1.5 / 3), "n": 3},
        "u": {"accuracy": pytest.approx(2 / 3), "n": 3},
    }


def test_score_pairs_loads_a_saved_model_and_scores_every_pair(tiny_model_dir):
    """The worker's path: a model folder (here the tiny Llama, given a fresh one-output head) scores text and
    conversational pairs, one chosen and one rejected score each; the same answer scores the same on both sides."""
    from evaluation.handoff_metrics import score_pairs

    pairs = [
        ("Say hi.", "hi there", "go away"),
        (
            [{"role": "user", "content": "Say hi."}],
            [{"role": "assistant", "content": "hi"}],
            [{"role": "assistant", "content": "no"}],
        ),
        ("Same?", "same answer", "same answer"),
    ]
    chosen, rejected = score_pairs(checkpoint_dir=str(tiny_model_dir), pairs=pairs, batch_size=2)
    assert chosen.shape == rejected.shape == (3,)
    assert np.isfinite(chosen).all() and np.isfinite(rejected).all()
    assert chosen[2] == pytest.approx(rejected[2], abs=1e-5)
    assert chosen[0] != pytest.approx(rejected[0], abs=1e-6)
