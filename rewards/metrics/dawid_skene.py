"""Dawid-Skene EM over a batch: each annotator's confusion matrix and each item's posterior over the four labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from rewards.metrics.data import N_LABELS, Judgments


@dataclass(frozen=True, eq=False)
class DawidSkene:
    """The fitted model. Arrays follow the module's array convention: NaN only where a mask says so.

    confusion[a, k, l] = P(annotator a says l | the true label is k); rows sum to 1. An annotator with
    no judgment keeps the uniform prior row. class_prior[k] = P(true label is k). posterior[i, k] =
    P(item i is k | its judgments); an item without judgments gets class_prior.
    item_counts[i] = judgments of item i. annotator_accuracy[a] = the expected share of a's labels equal to the true label (mean posterior
    of the label they gave), NaN exactly where n_judgments[a] == 0.
    """

    confusion: np.ndarray
    class_prior: np.ndarray
    posterior: np.ndarray
    annotator_accuracy: np.ndarray
    n_judgments: np.ndarray
    item_counts: np.ndarray
    iterations: int
    converged: bool
    log_likelihood: float

    def labels(self) -> np.ndarray:
        """The most probable label per item (lowest code on an exact tie); -1 for items without judgments."""
        return np.where(self.item_counts > 0, self.posterior.argmax(axis=1), -1)


def dawid_skene(judgments: Judgments, *, max_iter: int = 200, tol: float = 1e-7, smoothing: float = 0.01) -> DawidSkene:
    """Fit by EM from the majority-vote shares (which keeps label codes from being permuted).

    smoothing is a pseudo-count added to every confusion cell and class count, so a label an annotator
    never used does not become impossible (log 0). Stops when the log-likelihood changes by less than
    tol relative, or after max_iter iterations (converged is then False). Deterministic: no random start.
    """
    k_labels = N_LABELS
    n_ann, n_items = judgments.n_annotators, judgments.n_items
    item, key = judgments.item, judgments.annotator * k_labels + judgments.label
    item_counts = judgments.item_counts
    n_per = np.bincount(judgments.annotator, minlength=n_ann)
    judged = item_counts > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        posterior = np.where(judged[:, None], judgments.item_label_counts / item_counts[:, None], 1.0 / k_labels)
    log_likelihood = -np.inf
    converged = False
    iterations = 0
    confusion = np.full((n_ann, k_labels, k_labels), 1.0 / k_labels)
    prior = np.full(k_labels, 1.0 / k_labels)
    # Incidence of (item, annotator-and-label): both EM steps are one sparse product with it.
    incidence = sparse.csr_matrix(
        (np.ones(judgments.size), (item, key)), shape=(n_items, n_ann * k_labels), dtype=np.float64
    )
    incidence_t = incidence.T.tocsr()
    judged_weight = judged.astype(np.float64)
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        # M-step: soft counts of (annotator, true k, said l), then row-normalised.
        counts = np.asarray(incidence_t @ posterior).reshape(n_ann, k_labels, k_labels).transpose(0, 2, 1)
        counts = counts + smoothing
        confusion = counts / counts.sum(axis=2, keepdims=True)
        prior_counts = judged_weight @ posterior + smoothing
        prior = prior_counts / prior_counts.sum()
        # E-step: log P(true k) + the log-probabilities of every label the item got.
        log_confusion = np.log(confusion).transpose(0, 2, 1).reshape(n_ann * k_labels, k_labels)  # [(a, l), k]
        log_joint = np.asarray(incidence @ log_confusion) + np.log(prior)
        top = log_joint.max(axis=1, keepdims=True)
        norm = top + np.log(np.exp(log_joint - top).sum(axis=1, keepdims=True))
        posterior = np.exp(log_joint - norm)
        previous, log_likelihood = log_likelihood, float(judged_weight @ norm[:, 0])
        if np.isfinite(previous) and abs(log_likelihood - previous) <= tol * max(1.0, abs(log_likelihood)):
            converged = True
            break
    if judgments.size == 0:
        converged, log_likelihood = True, 0.0
    correct = np.bincount(judgments.annotator, weights=posterior[item, judgments.label], minlength=n_ann)
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.where(n_per > 0, correct / n_per, np.nan)
    return DawidSkene(
        confusion=confusion,
        class_prior=prior,
        posterior=posterior,
        annotator_accuracy=accuracy,
        n_judgments=n_per,
        item_counts=item_counts,
        iterations=iterations if judgments.size else 0,
        converged=converged,
        log_likelihood=log_likelihood,
    )
