"""Reads for the lead's drill-down: one annotator's judgments in a project, filtered, with each item's majority."""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db.models import Count, QuerySet

from annotation.models import Judgment, Project

# Canonical words, never left/right: the drill-down shows what was chosen, not where it sat on the screen.
CHOICE_WORDS = {"a": "A", "b": "B", "tie": "tie", "both_bad": "both bad"}
PROMPT_CHARS = 120

DRILLDOWN_COLUMNS = [
    "judgment_id",
    "item_id",
    "item_pk",
    "batch_id",
    "batch",
    "prompt",
    "choice",
    "chosen_model",
    "model_a",
    "model_b",
    "majority",
    "votes",
    "gold",
    "gold_correct",
    "seconds",
    "too_fast",
    "justification",
    "created_at",
]


@dataclass(frozen=True)
class DrilldownFilters:
    batch_id: int | None = None
    gold_missed: bool = False  # only gold items answered wrongly
    with_justification: bool = False  # only judgments that carry a justification


def annotator_judged_in(*, project: Project, user_id: int) -> bool:
    """Whether the user has at least one judgment in the project (the drill-down of anyone else is a 404)."""
    return Judgment.objects.filter(batch__project=project, annotator_id=user_id).exists()


def annotator_judgments(*, project: Project, user_id: int, filters: DrilldownFilters) -> QuerySet[Judgment]:
    """The user's judgments in the project, newest first, narrowed by `filters`."""
    judgments = Judgment.objects.filter(batch__project=project, annotator_id=user_id)
    if filters.batch_id is not None:
        judgments = judgments.filter(batch_id=filters.batch_id)
    if filters.gold_missed:
        judgments = judgments.filter(is_gold=True, gold_correct=False)
    if filters.with_justification:
        judgments = judgments.exclude(justification="")
    return judgments.select_related("item", "batch").order_by("-created_at", "-pk")


def _prompt(item) -> str:
    text = item.prompt
    if not text and item.messages:
        # A conversation: its last user turn is the question being answered.
        users = [m.get("content", "") for m in item.messages if isinstance(m, dict) and m.get("role") == "user"]
        text = users[-1] if users else ""
    text = " ".join(str(text).split())
    return text if len(text) <= PROMPT_CHARS else text[: PROMPT_CHARS - 1] + "…"


def _tallies(item_ids: Iterable[int]) -> dict[int, Counter]:
    """Every vote on these items (all annotators), one query."""
    tallies: dict[int, Counter] = {}
    rows = Judgment.objects.filter(item_id__in=list(item_ids)).values("item_id", "choice").annotate(n=Count("pk"))
    for row in rows.order_by():
        tallies.setdefault(row["item_id"], Counter())[row["choice"]] = row["n"]
    return tallies


def _majority(tally: Counter) -> str:
    """The choice with the most votes, in canonical words; "split" when two choices share the lead."""
    ranked = tally.most_common()
    if not ranked:
        return ""
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return "split"
    return CHOICE_WORDS[ranked[0][0]]


def drilldown_rows(*, judgments: Sequence[Judgment]) -> list[dict]:
    """The rows a lead reads: what was chosen (with model names), the item's majority, gold and timing."""
    tallies = _tallies({j.item_id for j in judgments})
    rows = []
    for j in judgments:
        item, tally = j.item, tallies.get(j.item_id, Counter())
        chosen_model = {"a": item.response_a_model, "b": item.response_b_model}.get(j.choice, "")
        rows.append(
            {
                "judgment_id": j.pk,
                "item_id": item.external_id or f"item {item.pk}",
                "item_pk": item.pk,
                "batch_id": j.batch_id,
                "batch": j.batch.name,
                "prompt": _prompt(item),
                "choice": CHOICE_WORDS[j.choice],
                "chosen_model": chosen_model,
                "model_a": item.response_a_model,
                "model_b": item.response_b_model,
                "majority": _majority(tally),
                "votes": " · ".join(f"{CHOICE_WORDS[c]} {n}" for c, n in tally.most_common()),
                "gold": CHOICE_WORDS.get(item.gold, "") if j.is_gold else "",
                "gold_correct": j.gold_correct if j.is_gold else None,
                "seconds": round(j.seconds, 1),
                "too_fast": j.too_fast,
                "justification": j.justification,
                "created_at": j.created_at.isoformat(),
            }
        )
    return rows
