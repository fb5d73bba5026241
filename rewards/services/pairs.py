"""Votes turned into preference pairs: the rule that decides which items a model is trained on, and why others are not."""

from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np

from annotation.models import Batch, Item
from annotation.rules import vote_decision
from rewards.metrics import N_LABELS, dawid_skene
from rewards.selectors import (
    LABELS,
    batch_item_labels,
    batch_item_votes,
    batch_item_votes_iter,
    batch_judgments,
    batch_vote_counts,
)

Weighting = Literal["vote", "dawid_skene"]


def preference_pairs(*, batch_ids: Iterable[int], weighting: Weighting = "vote") -> tuple[list[dict], list[dict]]:
    """The batches' items as preference pairs (TRL format plus votes, agreement, margin), and every item left out.
    In memory: rewards.services.datasets streams the same decisions from iter_decisions.

    Per item, annotation.rules.vote_decision decides with the batch's criteria version's tie rule and the
    project's min_agreement. Left out, each with its reason:
    - "withdrawn": a lead withdrew the item after annotators reported it (broken, harmful, out of scope); its votes
      are not evidence of a preference.
    - "gold": gold items are quality probes served to many annotators, with an answer fixed by the lead rather
      than by votes; training on them would also leak the gold set into the model that is later checked
      against it. (Their judgments still count toward the Dawid-Skene fit.)
    - "incomplete": fewer votes than the project's overlap (an open batch's item still being judged).
    - vote_decision's reasons: "split", "low_agreement" (the dashboard's split items), "tie", "both_bad"
      (material for demonstrations).

    weighting "dawid_skene": each vote counts the voter's estimated accuracy from a Dawid-Skene fit over the
    batch (the mean posterior of the labels they gave) instead of 1, so reliable annotators weigh more.
    """
    pairs: list[dict] = []
    excluded: list[dict] = []
    for is_pair, row in iter_decisions(batch_ids=batch_ids, weighting=weighting):
        (pairs if is_pair else excluded).append(row)
    return pairs, excluded


def iter_decisions(
    *, batch_ids: Iterable[int], weighting: Weighting = "vote", chunk_size: int | None = None
) -> Iterator[tuple[bool, dict]]:
    """preference_pairs one item at a time: (True, pair) or (False, exclusion), batches oldest first, items in id
    order. chunk_size reads each batch's items that many at a time (flat memory, for export); None reads a batch
    at once. Dawid-Skene weighting still fits each batch's judgments as a whole (numbers only, not texts)."""
    if weighting not in ("vote", "dawid_skene"):
        raise ValueError(f"unknown weighting {weighting!r}")
    batches = Batch.objects.filter(pk__in=list(batch_ids)).select_related("project", "criteria_version")
    for batch in batches.order_by("created_at", "pk"):
        weighted = reliability_weighted_votes(batch) if weighting == "dawid_skene" else {}
        entries = (
            batch_item_votes(batch=batch)
            if chunk_size is None
            else batch_item_votes_iter(batch=batch, chunk_size=chunk_size)
        )
        # Read once per batch: related-object lookups add up over a million items.
        overlap, min_agreement = batch.project.overlap, batch.project.min_agreement
        criteria_number, tie_rule = batch.criteria_version.number, batch.criteria_version.tie_rule
        withdrawn = withdrawn_items(batch)
        for entry in entries:
            item, votes = entry.item, entry.votes
            common = {
                "item_id": item.external_id or str(item.pk),
                "item_pk": item.pk,
                "batch": batch.name,
                "source": "human",  # a labelled source's rows (rewards.services.datasets) carry its name
                "criteria_version": criteria_number,
                "votes": votes,
            }
            if item.pk in withdrawn:
                yield False, _exclusion(common, item, "withdrawn")
                continue
            if item.gold:
                yield False, _exclusion(common, item, "gold")
                continue
            if sum(votes.values()) < overlap:
                yield False, _exclusion(common, item, "incomplete")
                continue
            counted = weighted.get(item.pk, votes)
            decision = vote_decision(**counted, tie_rule=tie_rule, min_agreement=min_agreement)
            scores = {"agreement": round(decision.agreement, 6), "margin": round(decision.margin, 6)}
            if weighting == "dawid_skene":
                scores["weighted_votes"] = {label: round(value, 6) for label, value in counted.items()}
            if decision.chosen is None:
                yield False, _exclusion(common, item, decision.reason) | scores
                continue
            yield True, _pair(item, decision.chosen) | common | scores


SPLIT_REASONS = ("split", "low_agreement")


def split_items(*, batch_ids: Iterable[int]) -> list[dict]:
    """The items preference_pairs leaves out because their votes split ("split", "low_agreement"), oldest batch
    first, items in id order, each with its votes, agreement, margin and the models behind A and B.

    The same decisions as preference_pairs (one vote each), from vote counts the database makes and the items'
    short fields: no text is read, so the lead's list answers in about a second at a million judgments.
    """
    rows: list[dict] = []
    batches = Batch.objects.filter(pk__in=list(batch_ids)).select_related("project", "criteria_version")
    for batch in batches.order_by("created_at", "pk"):
        counts = batch_vote_counts(batch=batch)
        withdrawn = withdrawn_items(batch)
        for pk, external_id, gold, model_a, model_b in batch_item_labels(batch=batch):
            votes = counts.get(pk)
            if pk in withdrawn or gold or votes is None or sum(votes.values()) < batch.project.overlap:
                continue
            decision = vote_decision(
                **votes, tie_rule=batch.criteria_version.tie_rule, min_agreement=batch.project.min_agreement
            )
            if decision.reason in SPLIT_REASONS:
                rows.append(
                    {
                        "item_pk": pk,
                        "item_id": external_id or str(pk),
                        "batch": batch.name,
                        "reason": decision.reason,
                        "votes": votes,
                        "agreement": round(decision.agreement, 6),
                        "margin": round(decision.margin, 6),
                        "model_a": model_a,
                        "model_b": model_b,
                    }
                )
    return rows


def reliability_weighted_votes(batch: Batch) -> dict[int, dict[str, float]]:
    current = batch_judgments(batch=batch)
    judgments = current.judgments
    if not judgments.size:
        return {}
    fit = dawid_skene(judgments)
    weights = fit.annotator_accuracy[judgments.annotator]
    table = np.bincount(
        judgments.item * N_LABELS + judgments.label, weights=weights, minlength=judgments.n_items * N_LABELS
    ).reshape(judgments.n_items, N_LABELS)
    return {
        int(item_id): {label: float(value) for label, value in zip(LABELS, row, strict=True)}
        for item_id, row in zip(current.item_ids.tolist(), table, strict=True)
    }


def withdrawn_items(batch: Batch) -> frozenset[int]:
    """The batch's withdrawn items (few: one query per batch, whatever the export reads of the items)."""
    return frozenset(Item.objects.filter(batch=batch, withdrawn_at__isnull=False).values_list("pk", flat=True))


def _exclusion(common: dict, item, reason: str) -> dict:
    return {**common, "reason": reason, "models": {"a": item.response_a_model, "b": item.response_b_model}}


def _pair(item, chosen: str) -> dict:
    winner, loser = (item.response_a_text, item.response_b_text)[:: 1 if chosen == "a" else -1]
    if item.messages:
        return {
            "prompt": item.messages,
            "chosen": [{"role": "assistant", "content": winner}],
            "rejected": [{"role": "assistant", "content": loser}],
        }
    return {"prompt": item.prompt, "chosen": winner, "rejected": loser}
