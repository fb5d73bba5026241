"""Reads for the lead's drill-down: one annotator's judgments in a project, filtered, with each item's majority; and a
batch's raw judgments for download, annotators named by a pseudonym stable per project."""

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from django.db.models import Count, QuerySet
from django.utils.crypto import salted_hmac

from annotation.models import Batch, Judgment, Project

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


# --- A batch's raw judgments, for download (issue 15, item 6) ------------------------------------------------------

# The columns before and after the per-criterion ones (`dimension:<key>`, from the batch's criteria version).
RAW_JUDGMENT_HEAD = ["judgment_id", "item_id", "annotator", "choice"]
RAW_JUDGMENT_TAIL = [
    "justification",
    "seconds",
    "too_fast",
    "is_gold",
    "gold_correct",
    "criteria_version",
    "revised",
    "created_at",
]
PSEUDONYM_SALT = "tandem.rewards.annotator-pseudonym"


def annotator_pseudonym(*, project_id: int, user_id: int) -> str:
    """A short name for an annotator that is the same in every batch of one project and unrelated across projects:
    an HMAC of the two ids under SECRET_KEY, so that it cannot be turned back into a user without the key."""
    digest = salted_hmac(PSEUDONYM_SALT, f"{project_id}:{user_id}", algorithm="sha256").hexdigest()
    return f"ann-{digest[:12]}"


def raw_judgment_dimension_keys(*, batch: Batch) -> list[str]:
    """The batch's criteria, by priority: one CSV column each."""
    dimensions = sorted(batch.criteria_version.dimensions or [], key=lambda d: d.get("priority", 0))
    return [d["key"] for d in dimensions if isinstance(d, dict) and d.get("key")]


def raw_judgment_columns(*, batch: Batch) -> list[str]:
    return [
        *RAW_JUDGMENT_HEAD,
        *(f"dimension:{key}" for key in raw_judgment_dimension_keys(batch=batch)),
        *RAW_JUDGMENT_TAIL,
    ]


def raw_judgments(*, batch: Batch) -> Iterator[dict]:
    """Every judgment of the batch, oldest first, one dict each: the item's external id (else its primary key), the
    annotator's pseudonym (annotator_pseudonym), the canonical choice (a / b / tie / both_bad, never a side), the
    per-criterion answers ({key: a / b / tie / na}), justification, seconds, gold result (is_gold, gold_correct),
    the batch's criteria version and whether it was revised. Read in chunks, so a batch of any size streams."""
    project_id, criteria = batch.project_id, batch.criteria_version.number
    pseudonyms: dict[int, str] = {}
    rows = (
        Judgment.objects.filter(batch=batch)
        .order_by("pk")
        .values(
            "pk",
            "item__external_id",
            "item_id",
            "annotator_id",
            "choice",
            "dimensions",
            "justification",
            "seconds",
            "too_fast",
            "is_gold",
            "gold_correct",
            "revised_at",
            "created_at",
        )
    )
    for j in rows.iterator(chunk_size=2000):
        user_id = j["annotator_id"]
        if user_id not in pseudonyms:
            pseudonyms[user_id] = annotator_pseudonym(project_id=project_id, user_id=user_id)
        yield {
            "judgment_id": j["pk"],
            "item_id": j["item__external_id"] or str(j["item_id"]),
            "annotator": pseudonyms[user_id],
            "choice": j["choice"],
            "dimensions": j["dimensions"] or {},
            "justification": j["justification"],
            "seconds": j["seconds"],
            "too_fast": j["too_fast"],
            "is_gold": j["is_gold"],
            "gold_correct": j["gold_correct"] if j["is_gold"] else None,
            "criteria_version": criteria,
            "revised": j["revised_at"] is not None,
            "created_at": j["created_at"].isoformat(),
        }


def raw_judgment_csv_row(row: dict) -> dict:
    """A raw judgment as a flat CSV row: one `dimension:<key>` cell per criterion answered."""
    flat = {key: value for key, value in row.items() if key != "dimensions"}
    flat.update({f"dimension:{key}": value for key, value in row["dimensions"].items()})
    return flat
