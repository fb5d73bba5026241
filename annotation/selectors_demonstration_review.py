"""Reads for the lead's review of demonstrations: the queue (filtered, oldest first) and per-writer figures."""

import statistics
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import QuerySet
from django.db.models.functions import Length
from rapidfuzz.distance import Levenshtein

from annotation.models import Demonstration, Project

STATUSES = tuple(Demonstration.Status.values)

WRITER_COLUMNS = [
    "writer_id",
    "writer",
    "demonstrations",
    "pending",
    "accepted",
    "accepted_edited",
    "rejected",
    "acceptance_rate",
    "edit_distance_mean",
    "edit_distance_median",
    "edit_ratio_mean",
    "median_seconds",
    "median_length",
]


@dataclass(frozen=True)
class QueueFilters:
    status: str | None = Demonstration.Status.PENDING  # None: every status
    batch_id: int | None = None
    writer_id: int | None = None


def demonstration_queue(*, project: Project, filters: QueueFilters) -> QuerySet[Demonstration]:
    """The project's written demonstrations (imported ones have no writer and are not reviewed here), oldest first:
    the order writers submitted them in, so the queue is worked front to back."""
    demonstrations = Demonstration.objects.filter(batch__project=project, writer__isnull=False)
    if filters.status is not None:
        demonstrations = demonstrations.filter(status=filters.status)
    if filters.batch_id is not None:
        demonstrations = demonstrations.filter(batch_id=filters.batch_id)
    if filters.writer_id is not None:
        demonstrations = demonstrations.filter(writer_id=filters.writer_id)
    return demonstrations.select_related("item", "batch", "writer", "reviewed_by").order_by("created_at", "pk")


def demonstration_for_review(*, demonstration_id: int) -> Demonstration | None:
    """The demonstration with what a door needs to ask core.authz (its batch's project) and what its row shows."""
    related = ("item", "batch", "writer", "reviewed_by")
    return Demonstration.objects.select_related(*related).filter(pk=demonstration_id).first()


def project_writers(*, project: Project) -> list[tuple[int, str]]:
    """(user id, username) of everyone who wrote a demonstration in the project, by name: the queue's filter."""
    rows = (
        Demonstration.objects.filter(batch__project=project, writer__isnull=False)
        .values_list("writer_id", "writer__username")
        .distinct()
        .order_by("writer__username")
    )
    return list(rows)


def demonstration_row(demonstration: Demonstration) -> dict:
    item = demonstration.item
    return {
        "id": demonstration.pk,
        "item_id": item.external_id or str(item.pk),
        "batch_id": demonstration.batch_id,
        "batch": demonstration.batch.name,
        "prompt": item.prompt,
        "messages": item.messages,
        "writer_id": demonstration.writer_id,
        "writer": demonstration.writer.get_username() if demonstration.writer else None,
        "text": demonstration.text,
        "length": len(demonstration.text),
        "seconds": demonstration.seconds,
        "status": demonstration.status,
        "edited_text": demonstration.edited_text,
        "final_text": demonstration.final_text,
        "review_reason": demonstration.review_reason,
        "reviewed_by": demonstration.reviewed_by.get_username() if demonstration.reviewed_by else None,
        "reviewed_at": demonstration.reviewed_at.isoformat() if demonstration.reviewed_at else None,
        "created_at": demonstration.created_at.isoformat(),
    }


def writer_figures(*, project: Project, batch_id: int | None = None) -> list[dict]:
    """Per writer of the project (or of one batch): how many demonstrations, how many accepted, edited and rejected;
    the acceptance rate of those reviewed (accepted / (accepted + rejected), None before any review); the Levenshtein
    distance between the text as written and the reviewer's edit, in characters (mean and median over the accepted
    demonstrations that were edited) and normalised by the longer text (mean); median seconds to write and median
    length in characters of the text as written. Sorted by username."""
    demonstrations = Demonstration.objects.filter(batch__project=project, writer__isnull=False)
    if batch_id is not None:
        demonstrations = demonstrations.filter(batch_id=batch_id)
    counts: dict[int, dict] = {}
    seconds: dict[int, list[float]] = defaultdict(list)
    lengths: dict[int, list[int]] = defaultdict(list)
    rows = demonstrations.values_list(
        "writer_id", "writer__username", "status", "seconds", Length("text"), Length("edited_text")
    )
    for writer_id, username, status, secs, length, edited_length in rows.order_by().iterator(chunk_size=2000):
        figures = counts.setdefault(
            writer_id,
            {
                "writer_id": writer_id,
                "writer": username,
                "demonstrations": 0,
                "pending": 0,
                "accepted": 0,
                "accepted_edited": 0,
                "rejected": 0,
            },
        )
        figures["demonstrations"] += 1
        figures[status] += 1
        if status == Demonstration.Status.ACCEPTED and edited_length:
            figures["accepted_edited"] += 1
        if secs is not None:
            seconds[writer_id].append(secs)
        lengths[writer_id].append(length)
    distances: dict[int, list[int]] = defaultdict(list)
    ratios: dict[int, list[float]] = defaultdict(list)
    edits = (
        demonstrations.filter(status=Demonstration.Status.ACCEPTED)
        .exclude(edited_text="")
        .values_list("writer_id", "text", "edited_text")
    )
    for writer_id, text, edited in edits.order_by().iterator(chunk_size=500):
        distances[writer_id].append(Levenshtein.distance(text, edited))
        ratios[writer_id].append(Levenshtein.normalized_distance(text, edited))
    out = []
    for writer_id, figures in counts.items():
        reviewed = figures["accepted"] + figures["rejected"]
        out.append(
            {
                **figures,
                "acceptance_rate": figures["accepted"] / reviewed if reviewed else None,
                "edit_distance_mean": _mean(distances[writer_id]),
                "edit_distance_median": _median(distances[writer_id]),
                "edit_ratio_mean": _mean(ratios[writer_id]),
                "median_seconds": _median(seconds[writer_id]),
                "median_length": _median(lengths[writer_id]),
            }
        )
    return sorted(out, key=lambda row: (row["writer"] or "", row["writer_id"]))


def _mean(values: list) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: list) -> float | None:
    return statistics.median(values) if values else None
