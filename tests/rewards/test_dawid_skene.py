"""Dawid-Skene EM: recovers known annotator accuracies and beats majority vote on a crowd with noisy members."""

import numpy as np
import pytest

from rewards.metrics import Judgments, dawid_skene

ACCURACY = np.array([0.9, 0.88, 0.85, 0.35, 0.3])  # three good annotators, two noisy ones


def simulate(seed: int, items: int = 3000) -> tuple[Judgments, np.ndarray]:
    """Everyone judges every item. Noisy annotators, when wrong, say "a" half the time (a systematic
    lean majority vote cannot see), else another label at random."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(4, size=items, p=[0.4, 0.4, 0.12, 0.08])
    item = np.repeat(np.arange(items), ACCURACY.size)
    annotator = np.tile(np.arange(ACCURACY.size), items)
    true = truth[item]
    right = rng.random(item.size) < ACCURACY[annotator]
    other = (true + rng.integers(1, 4, size=item.size)) % 4
    lean = (annotator >= 3) & (rng.random(item.size) < 0.5) & (true != 0)
    label = np.where(right, true, np.where(lean, 0, other))
    judgments = Judgments(item=item, annotator=annotator, label=label, n_items=items, n_annotators=ACCURACY.size)
    return judgments, truth


def majority_vote(j: Judgments) -> np.ndarray:
    return j.item_label_counts.argmax(axis=1)  # lowest code on a tie


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recovers_accuracies_and_beats_majority_vote(seed):
    j, truth = simulate(seed)
    model = dawid_skene(j)
    assert model.converged and model.iterations < 200
    observed = np.array([(j.label[j.annotator == a] == truth[j.item[j.annotator == a]]).mean() for a in range(5)])
    assert np.abs(model.annotator_accuracy - observed).max() < 0.03
    assert np.abs(np.diagonal(model.confusion, axis1=1, axis2=2)[:3].mean(axis=1) - ACCURACY[:3]).max() < 0.08
    ds_accuracy = (model.labels() == truth).mean()
    mv_accuracy = (majority_vote(j) == truth).mean()
    assert ds_accuracy > mv_accuracy + 0.02, (ds_accuracy, mv_accuracy)
    assert np.allclose(model.posterior.sum(axis=1), 1.0)
    assert np.allclose(model.confusion.sum(axis=2), 1.0)


def test_is_deterministic():
    j, _ = simulate(4, items=500)
    one, two = dawid_skene(j), dawid_skene(j)
    assert np.array_equal(one.posterior, two.posterior) and one.iterations == two.iterations


def test_unjudged_items_get_the_class_prior_and_label_minus_one():
    j = Judgments.from_arrays(item=[0, 0, 1, 1], annotator=[0, 1, 0, 1], label=[0, 0, 1, 1], n_items=3)
    model = dawid_skene(j)
    assert np.allclose(model.posterior[2], model.class_prior)
    assert model.labels().tolist() == [0, 1, -1]


def test_one_annotator_follows_their_labels():
    j = Judgments.from_arrays(item=[0, 1, 2, 3], annotator=[0, 0, 0, 0], label=[0, 1, 2, 3])
    model = dawid_skene(j)
    assert model.labels().tolist() == [0, 1, 2, 3]
    assert model.annotator_accuracy[0] > 0.9
