"""What the lead's pages show: stored agreement snapshots shaped into tables and chart data. Nothing is computed
here from judgments; a batch without a snapshot shows as "not computed yet".

The per-batch figures come from rewards.selectors.snapshot_summary (the same numbers as the API's tables and
`manage.py agreement`); the reasons behind a missing value (a null kappa with no shared items...) are read from
the stored report, which keeps them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Func, IntegerField, JSONField, OuterRef, Subquery
from django.urls import reverse

from annotation.models import ITEM_QUEUE_KEY, Batch, Item, Membership, Project
from annotation.selectors import judged_batches
from core.authz import Action, projects_where
from rewards.metrics.flags import LEVEL_ORDER
from rewards.models import AgreementSnapshot
from rewards.selectors import flag_rules_for, snapshot_summary, stored_split_items

# Why a figure is missing, for the "—" tooltip. Keys are rewards.metrics.stats' reason codes.
REASONS = {
    "empty": "Nothing to compute on: no judgments of this kind in the batch.",
    "no_shared_items": "No item was judged by two or more annotators, so there is nothing to agree on.",
    "single_label": "Every judgment in scope has the same label: chance agreement is 1 and the coefficient is undefined.",
    "single_group": "A comparison needs two groups with judgments.",
    "no_consensus": "None of their items had a clear consensus among the other annotators.",
    "not_recorded": "Not recorded for these judgments.",
    "not_computed": "No snapshot of this batch yet.",
    "not_judged": "They made no judgment in this batch.",
}
# Batch columns: summary key, report key (for the reason and interval), label, kind ("kappa" or "share").
BATCH_METRICS = [
    ("cohen_kappa", "cohen_kappa", "Cohen's κ", "kappa"),
    ("krippendorff_alpha", "krippendorff_alpha", "Krippendorff's α", "kappa"),
    ("fleiss_kappa", "fleiss_kappa", "Fleiss' κ", "kappa"),
    ("agreement", "agreement", "Agreement", "share"),
    ("gold_accuracy", "gold_accuracy", "Gold accuracy", "share"),
]
ANNOTATOR_METRICS = [
    ("consensus_kappa", "consensus_kappa", "κ consensus", "kappa"),
    ("consensus_agreement", "consensus_agreement", "Agrees", "share"),
    ("gold_accuracy", "gold_accuracy", "Gold accuracy", "share"),
    ("left_share", "left_share", "Left share", "share"),
    ("longer_share", "longer_share", "Longer share", "share"),
    ("tie_rate", "tie_rate", "Tie rate", "share"),
    ("both_bad_rate", "both_bad_rate", "Both bad", "share"),
]
PER_HOUR_MAX_BARS = 24 * 14  # the chart shows the last two weeks of hours that had judgments


class _ReportForPages(Func):
    """The stored report without "cohen_pairs" and "drift", cut in SQL. At 200 annotators the pairs are 19,900
    rows (about 2.5 MB of JSON per snapshot) and drift another 130 kB that no page shows; sending and parsing
    them dominated the dashboard's response time. (PostgreSQL still decompresses the whole value once.)"""

    output_field = JSONField()
    DROPPED = ("cohen_pairs", "drift")

    def __init__(self):
        super().__init__(F("report"))

    def as_sql(self, compiler, connection, **extra):
        report, params = compiler.compile(self.source_expressions[0])
        paths = ", ".join(f"'$.{key}'" for key in self.DROPPED)
        return f"json_remove({report}, {paths})", params

    def as_postgresql(self, compiler, connection, **extra):
        report, params = compiler.compile(self.source_expressions[0])
        keys = ", ".join(f"'{key}'" for key in self.DROPPED)
        return f"({report} - ARRAY[{keys}]::text[])", params


def latest_snapshots_light(*, batches: list[Batch]) -> dict[int, AgreementSnapshot]:
    """Batch id -> its latest snapshot, one row per batch (through the snapshot_latest_per_batch index), its
    report without the per-pair kappas and drift details. The instances are for reading only."""
    latest = AgreementSnapshot.objects.filter(batch=OuterRef("batch")).order_by("-computed_at", "-pk").values("pk")[:1]
    rows = (
        AgreementSnapshot.objects.filter(batch__in=[b.pk for b in batches], pk=Subquery(latest))
        .order_by()
        .defer("report")
        .annotate(light_report=_ReportForPages())
    )
    snapshots = {}
    for snapshot in rows:
        snapshot.report = snapshot.light_report
        snapshots[snapshot.batch_id] = snapshot
    return snapshots


def _item_count(**conditions) -> Subquery:
    """COUNT(*) of the outer batch's items matching conditions, as a scalar subquery."""
    items = Item.objects.filter(batch=OuterRef("pk"), **conditions).order_by().values("batch")
    return Subquery(items.annotate(n=Count("*")).values("n"), output_field=IntegerField())


def batch_progress(*, batches: list[Batch], overlap: int) -> dict[int, dict[str, int]]:
    """Per batch: its items, its regular (non-gold) items, and how many of those have all the judgments they
    want (the project's overlap plus any extra that adaptive overlap asked for), from Item.judgment_count.

    Each count is a range of an index, per batch: all items from the batch index (an index-only scan on
    PostgreSQL), gold items and regular items still short of judgments from the item_queue index, whose key is
    exactly judgment_count - extra_judgments. Grouping the item table instead read the whole table (about
    500 MB at a million judgments) on every page view."""
    rows = (
        Batch.objects.filter(pk__in=[b.pk for b in batches])
        .order_by()
        .annotate(
            n_items=_item_count(),
            n_gold=_item_count(gold__gt=""),
            n_short=Subquery(
                Item.objects.filter(batch=OuterRef("pk"), gold="")
                .alias(queue_key=ITEM_QUEUE_KEY)
                .filter(queue_key__lt=overlap)
                .order_by()
                .values("batch")
                .annotate(n=Count("*"))
                .values("n"),
                output_field=IntegerField(),
            ),
        )
        .values_list("pk", "n_items", "n_gold", "n_short")
    )
    progress = {}
    for pk, n_items, n_gold, n_short in rows:
        regular = (n_items or 0) - (n_gold or 0)
        progress[pk] = {"items": n_items or 0, "regular": regular, "complete": regular - (n_short or 0)}
    return progress


def lead_projects_for(*, user: AbstractBaseUser) -> list[Project]:
    """Projects whose dashboard the user may open (core.authz: the lead API's rule)."""
    return list(projects_where(user=user, action=Action.VIEW_AGREEMENT).order_by("name"))


@dataclass(frozen=True)
class Metric:
    """One figure for a table cell: value (None shows as "—" with the reason as its tooltip), kind, and the
    detail for the tooltip of a value (its interval and count)."""

    value: float | None
    kind: str
    reason: str = ""
    low: float | None = None
    high: float | None = None
    n: int | None = None
    band: str = ""  # "alarm" / "warn" against the project's thresholds, for kappas and agreement


def _metric(part: dict | None, kind: str, *, reason_if_missing: str = "not_computed", band: str = "") -> Metric:
    if not part:
        return Metric(None, kind, REASONS[reason_if_missing])
    value = part.get("value")
    reason = part.get("reason") or ("" if value is not None else "empty")
    return Metric(
        value,
        kind,
        REASONS.get(reason, reason),
        part.get("low"),
        part.get("high"),
        part.get("n"),
        band if value is not None else "",
    )


def _band(value: float | None, *, warn: float, alarm: float | None = None) -> str:
    if value is None:
        return ""
    if alarm is not None and value < alarm:
        return "alarm"
    return "warn" if value < warn else ""


def _worst(flags: list[dict]) -> str:
    """The most serious level among the flags ("alarm", "warn", "watch"), "" when there is none."""
    levels = {f["level"] for f in flags}
    return next((level for level in ("alarm", "warn", "watch") if level in levels), "")


def _annotator_urls(project: Project) -> Callable[[int], str]:
    """user id -> the annotator page's URL, reversed once: reverse() per annotator and batch cost ~100 ms of the
    page at 200 annotators."""
    prefix = reverse("frontend:lead-annotator", args=[project.pk, 0]).removesuffix("0/")
    return lambda user_id: f"{prefix}{user_id}/"


def project_dashboard(*, project: Project) -> dict:
    """Everything the project page shows, from each batch's latest stored snapshot."""
    rules = flag_rules_for(project=project)
    urls = _annotator_urls(project)
    batches = list(judged_batches(project=project).select_related("criteria_version").order_by("created_at", "pk"))
    snapshots = latest_snapshots_light(batches=batches)
    progress = batch_progress(batches=batches, overlap=project.overlap)
    rows, summaries = [], []
    for batch in batches:
        snapshot = snapshots.get(batch.pk)
        summary = snapshot_summary(batch=batch, snapshot=snapshot)
        report = snapshot.report if snapshot else {}
        summaries.append((batch, snapshot, summary))
        counts = progress.get(batch.pk, {"items": 0, "regular": 0, "complete": 0})
        bands = {
            "cohen_kappa": _band(
                summary.get("cohen_kappa"), warn=rules.batch_kappa_warn, alarm=rules.batch_kappa_alarm
            ),
            "agreement": _band(summary.get("agreement"), warn=rules.batch_agreement_warn),
        }
        rows.append(
            {
                "batch": batch,
                "computed_at": snapshot.computed_at if snapshot else None,
                "items": counts["items"],
                "regular_items": counts["regular"],
                "complete_items": counts["complete"],
                "complete": Metric(
                    counts["complete"] / counts["regular"] if counts["regular"] else None,
                    "share",
                    "" if counts["regular"] else "The batch has no regular items.",
                ),
                "judgments": summary.get("judgments"),
                "annotators": summary.get("annotator_count"),
                "metrics": [
                    _metric(report.get(key), kind, band=bands.get(key, "")) if snapshot else _metric(None, kind)
                    for key, _, _, kind in BATCH_METRICS
                ],
                "flags": summary.get("flags", []),
                "level": _worst(summary.get("flags", [])),
            }
        )
    return {
        "rows": rows,
        "dimension_rows": _dimension_rows(summaries),
        "metric_labels": [label for _, _, label, _ in BATCH_METRICS],
        "computed": any(snapshot is not None for _, snapshot, _ in summaries),
        "annotator_flags": _annotator_flag_list(urls, summaries),
        "chart": _chart_data(urls, rules, summaries),
    }


def _dimension_rows(summaries) -> list[dict]:
    """Per batch and criteria dimension: agreement on that dimension's answers (regular items), for the table under
    the batches. Batches whose criteria have no dimensions, or whose snapshot predates the figure, add no row."""
    rows = []
    for batch, snapshot, _ in summaries:
        for dimension in (snapshot.report.get("dimensions") or []) if snapshot else []:
            rows.append(
                {
                    "batch": batch,
                    "label": dimension["label"],
                    "key": dimension["key"],
                    "judgments": dimension["judgments"],
                    "alpha": _metric(dimension["alpha"], "kappa", reason_if_missing="empty"),
                    "agreement": _metric(dimension["percent_agreement"], "share", reason_if_missing="empty"),
                }
            )
    return rows


def _annotator_flag_list(urls: Callable[[int], str], summaries) -> dict:
    """Annotator flags of every batch's latest snapshot, newest batch first and, within a batch, alarms first: a
    lead acts on the newest batch, and still sees what the earlier ones raised without opening each annotator."""
    computed = [(batch, summary) for batch, snapshot, summary in summaries if snapshot is not None]
    flags = []
    for position, (batch, summary) in enumerate(reversed(computed)):
        batch_flags = [
            {"username": row["username"], "url": urls(row["annotator_id"]), "batch": batch.name, **flag}
            for row in summary["annotators"]
            for flag in row["flags"]
        ]
        batch_flags.sort(key=lambda f: (LEVEL_ORDER.get(f["level"], 3), f["username"].lower()))
        flags.extend({**flag, "newest": position == 0} for flag in batch_flags)
    return {"batch": computed[-1][0].name if computed else None, "flags": flags, "batches": len(computed)}


def _chart_data(urls: Callable[[int], str], rules, summaries) -> dict:
    """The charts' data as plain JSON for dashboard.js (passed through json_script, never inline script)."""
    computed = [(batch, summary) for batch, snapshot, summary in summaries if snapshot is not None]
    names = [batch.name for batch, _ in computed]
    people: dict[int, dict] = {}
    for position, (_, summary) in enumerate(computed):
        for row in summary["annotators"]:
            person = people.setdefault(
                row["annotator_id"],
                {
                    "id": row["annotator_id"],
                    "username": row["username"],
                    "url": urls(row["annotator_id"]),
                    "flagged": False,
                    "gold_accuracy": [None] * len(computed),
                    "consensus_kappa": [None] * len(computed),
                },
            )
            person["gold_accuracy"][position] = row["gold_accuracy"]
            person["consensus_kappa"][position] = row["consensus_kappa"]
            person["flagged"] = person["flagged"] or bool(row["flags"])
    return {
        "labels": {
            "cohen_kappa": "Cohen's κ (mean over pairs)",
            "krippendorff_alpha": "Krippendorff's α",
            "fleiss_kappa": "Fleiss' κ",
            "gold_accuracy": "Gold accuracy",
            "consensus_kappa": "κ against consensus",
            "left_share": "Left share (position)",
            "longer_share": "Longer share (length)",
            "longer_vs_consensus": "Longer where the consensus was shorter (length vs consensus)",
            "judgments": "Judgments",
        },
        "thresholds": {"kappa_warn": rules.batch_kappa_warn, "kappa_alarm": rules.batch_kappa_alarm},
        "batches": [
            {
                "name": batch.name,
                "computed_at": summary["computed_at"],
                "judgments": summary["judgments"],
                "cohen_kappa": summary["cohen_kappa"],
                "krippendorff_alpha": summary["krippendorff_alpha"],
                "fleiss_kappa": summary["fleiss_kappa"],
            }
            for batch, summary in computed
        ],
        "batch_names": names,
        "annotators": sorted(people.values(), key=lambda p: p["username"].lower()),
        "bias": [
            {
                "batch": batch.name,
                "annotators": [
                    {
                        "id": row["annotator_id"],
                        "username": row["username"],
                        "left_share": row["left_share"],
                        "longer_share": row["longer_share"],
                        "longer_vs_consensus": row.get("longer_vs_consensus"),
                        "flagged": any(f["code"] in ("position_bias", "verbosity_bias") for f in row["flags"]),
                    }
                    for row in sorted(summary["annotators"], key=lambda r: r["username"].lower())
                ],
            }
            for batch, summary in computed
        ],
        "per_hour": _per_hour([summary for _, summary in computed]),
    }


def _per_hour(summaries: list[dict]) -> dict | None:
    """Judgments over time across the project's batches (the snapshots' judgments_per_hour summed), every bucket
    between the first and the last present (zeros included, so gaps show): per hour over two days at most, else per
    UTC day (ten days of hours are 240 bars nobody reads), the last PER_HOUR_MAX_BARS buckets. None when no snapshot
    carries any (snapshots stored before the series existed have none)."""
    totals: dict[datetime, int] = defaultdict(int)
    for summary in summaries:
        for row in summary.get("judgments_per_hour") or []:
            totals[datetime.fromisoformat(row["hour"])] += int(row["judgments"])
    if not totals:
        return None
    first, last = min(totals), max(totals)
    if last - first >= timedelta(hours=48):
        days: dict[datetime, int] = defaultdict(int)
        for hour, count in totals.items():
            days[hour.replace(hour=0)] += count
        totals, step, unit = days, timedelta(days=1), "day"
        first, last = min(totals), max(totals)
    else:
        step, unit = timedelta(hours=1), "hour"
    bucket = max(first, last - step * (PER_HOUR_MAX_BARS - 1))
    rows = []
    while bucket <= last:
        rows.append({"start": bucket.isoformat(), "judgments": totals.get(bucket, 0)})
        bucket += step
    return {"unit": unit, "rows": rows}


def annotator_page(*, project: Project, user_id: int) -> dict | None:
    """One annotator across the project's batches, from the stored snapshots; None if they are neither a member
    nor in any snapshot."""
    batches = list(judged_batches(project=project).select_related("criteria_version").order_by("created_at", "pk"))
    snapshots = latest_snapshots_light(batches=batches)
    username = None
    rows = []
    for batch in batches:
        snapshot = snapshots.get(batch.pk)
        if snapshot is None:
            rows.append({"batch": batch, "computed": False, "judged": False})
            continue
        summary = snapshot_summary(batch=batch, snapshot=snapshot)
        stats = next((r for r in summary["annotators"] if r["annotator_id"] == user_id), None)
        raw = next((r for r in snapshot.report["annotators"] if r["annotator"] == user_id), None)
        if stats is None:
            rows.append({"batch": batch, "computed": True, "judged": False})
            continue
        username = stats["username"]
        rows.append(
            {
                "batch": batch,
                "computed": True,
                "judged": True,
                "computed_at": snapshot.computed_at,
                "stats": stats,
                "metrics": [_metric(raw.get(key), kind) for _, key, _, kind in ANNOTATOR_METRICS],
                "left_p_value": stats["left_p_value"],
                "median_seconds": stats["median_seconds"],
                "too_fast": stats["too_fast"],
                "flags": stats["flags"],
                "level": _worst(stats["flags"]),
            }
        )
    membership = Membership.objects.filter(project=project, user_id=user_id).select_related("user").first()
    if username is None and membership is None:
        return None
    if username is None:
        username = membership.user.username
    judged = [r for r in rows if r.get("judged")]
    return {
        "user_id": user_id,
        "username": username,
        "role": membership.get_role_display() if membership else "",
        "rows": rows,
        "metric_labels": [label for _, _, label, _ in ANNOTATOR_METRICS],
        "flags": [{"batch": r["batch"].name, **f} for r in judged for f in r["flags"]],
        "chart": {
            "labels": {
                "gold_accuracy": "Gold accuracy",
                "consensus_kappa": "κ against consensus",
                "consensus_agreement": "Agrees with consensus",
                "left_share": "Left share (position)",
                "longer_share": "Longer share (length)",
                "longer_vs_consensus": "Longer where the consensus was shorter (length vs consensus)",
                "tie_rate": "Tie rate",
            },
            "batch_names": [r["batch"].name for r in judged],
            "series": {
                key: [r["stats"][key] for r in judged]
                for key in (
                    "gold_accuracy",
                    "consensus_kappa",
                    "consensus_agreement",
                    "left_share",
                    "longer_share",
                    "tie_rate",
                )
            },
        },
    }


def split_items_page(*, project: Project, batch_id: int | None = None) -> list[dict]:
    """Items whose votes split (no strict majority, or agreement under the project's minimum) with their votes
    and models, as each batch's latest snapshot stored them (rewards.selectors.stored_split_items, the same list
    as the split-items API). Without texts: with_texts() adds them to the entries a page shows."""
    batches = project.batches.all() if batch_id is None else project.batches.filter(pk=batch_id)
    criteria = dict(batches.values_list("name", "criteria_version__number"))
    return [
        {**row, "criteria_version": criteria.get(row["batch"]), "models": {"a": row["model_a"], "b": row["model_b"]}}
        for row in stored_split_items(batch_ids=batches.values_list("pk", flat=True))
    ]


def split_item_counts(*, project: Project) -> list[tuple[Batch, int]]:
    """Per batch of the project, oldest first, how many split items its latest snapshot stored: the split-items
    page links the batches that have some, so a page opened on a batch with none does not look empty."""
    batches = list(judged_batches(project=project).order_by("created_at", "pk"))
    counts: dict[str, int] = defaultdict(int)
    for row in stored_split_items(batch_ids=[b.pk for b in batches]):
        counts[row["batch"]] += 1
    return [(batch, counts.get(batch.name, 0)) for batch in batches]


def with_texts(entries: list[dict]) -> list[dict]:
    """The entries with their Item (prompt or messages and both responses), read for these entries only."""
    items = Item.objects.in_bulk([entry["item_pk"] for entry in entries])
    return [{**entry, "item": items[entry["item_pk"]]} for entry in entries if entry["item_pk"] in items]
