"""The snapshot service: what it stores is what rewards.metrics computes from the raw judgments of the batch and of
the earlier batches (its baseline), earlier batches without a snapshot get one, and the project's flag rules apply."""

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from annotation.models import Batch, Item, Judgment
from annotation.services import criteria_version_create
from rewards.metrics import FlagRules, Judgments, batch_report, flags_for, judgments_concat, longer_side, pool_baseline
from rewards.models import AgreementSnapshot, ProjectFlagRules
from rewards.selectors import batch_judgments, snapshot_summary
from rewards.services.snapshots import snapshot_all_for_project, snapshot_compute
from tests.factories import BatchFactory, ItemFactory, ProjectFactory
from tests.rewards.judging import judge

LABELS = ("a", "b", "tie", "both_bad")
GOLD = {"": -1, "a": 0, "b": 1, "tie": 2}


def fill_batch(batch, *, seed: int, annotators: list[str], items: int = 14, overlap: int = 3, gold_every: int = 4):
    """A batch judged by a random crowd: each item by `overlap` annotators (gold items by all), mostly agreeing."""
    rng = np.random.default_rng(seed)
    for position in range(items):
        gold = "ab"[position % 2] if position % gold_every == 0 else ""
        item = ItemFactory(
            batch=batch,
            gold=gold,
            response_b_text="Short." if position % 3 == 0 else f"A much longer second answer, number {position}.",
        )
        truth = gold or str(rng.choice(["a", "b", "tie", "both_bad"], p=[0.45, 0.4, 0.1, 0.05]))
        who = annotators if gold else list(rng.choice(annotators, size=overlap, replace=False))
        for username in who:
            choice = truth if rng.random() < 0.75 else str(rng.choice(LABELS))
            judge(item, username, choice, shown_left=str(rng.choice(["a", "b"])), seconds=float(rng.uniform(1, 40)))


def raw_judgments(batch, index: dict[int, int]) -> Judgments:
    """The batch as Judgments, built here straight from the rows (not through the selector under test)."""
    rows = list(
        Judgment.objects.filter(batch=batch)
        .order_by("created_at", "id")
        .values_list("item_id", "annotator_id", "choice", "shown_left", "seconds")
    )
    item_ids = sorted({r[0] for r in rows})
    position = {pk: i for i, pk in enumerate(item_ids)}
    for r in rows:
        index.setdefault(r[1], len(index))
    items = {i.pk: i for i in Item.objects.filter(pk__in=item_ids)}
    return Judgments(
        item=[position[r[0]] for r in rows],
        annotator=[index[r[1]] for r in rows],
        label=[LABELS.index(r[2]) for r in rows],
        n_items=len(item_ids),
        n_annotators=len(index),
        seconds=[r[4] for r in rows],
        shown_left=np.array([r[3] == "a" for r in rows], dtype=bool),
        gold=[GOLD[items[pk].gold] for pk in item_ids],
        longer=longer_side(
            [len(items[pk].response_a_text) for pk in item_ids], [len(items[pk].response_b_text) for pk in item_ids]
        ),
        criteria=[batch.criteria_version.number] * len(item_ids),
    )


def reference_reports(batches, *, rules: FlagRules | None = None) -> list[dict]:
    """Every batch's report and flags as the metrics compute them from all the raw judgments, in user ids."""
    index: dict[int, int] = {}
    parts, history, alarmed, out = [], [], set(), []
    for b, batch in enumerate(batches):
        current = raw_judgments(batch, index)
        report = batch_report(
            current,
            baseline=judgments_concat(parts) if parts else None,
            baseline_stats=pool_baseline(history, skip=alarmed) if parts else None,
            raters=batch.project.overlap,
            min_seconds=float(batch.project.min_seconds_per_judgment),
        )
        flags = flags_for(report, rules=rules or FlagRules())
        parts.append(current)
        history.append(report.annotators)
        alarmed |= {(b, f.annotator) for f in flags if f.code in ("gold_drop", "consensus_drop")}
        user = sorted(index, key=index.__getitem__)
        out.append(in_user_ids(report.to_dict(), [f.to_dict() for f in flags], user))
    return out


def in_user_ids(data: dict, flags: list[dict], user: list[int]) -> dict:
    for key in ("annotators", "drift"):
        for row in data[key]:
            row["annotator"] = user[row["annotator"]]
    for row in data["cohen_pairs"]:
        row["annotator_a"], row["annotator_b"] = user[row["annotator_a"]], user[row["annotator_b"]]
    data["flags"] = [{**f, "annotator": None if f["annotator"] is None else user[f["annotator"]]} for f in flags]
    return data


def comparable(report: dict) -> dict:
    """Order-free form: annotator rows by user id, pairs as unordered pairs, flags without their wording (messages
    name annotators, which the reference does not know). Agreement per dimension is checked in
    test_dimension_agreement.py."""
    report = {k: v for k, v in report.items() if k not in ("judgments_per_hour", "dimensions")}
    report["annotators"] = sorted(
        ({k: v for k, v in row.items() if k != "username"} for row in report["annotators"]),
        key=lambda r: r["annotator"],
    )
    report["drift"] = sorted(
        ({k: v for k, v in row.items() if k != "username"} for row in report["drift"]), key=lambda r: r["annotator"]
    )
    report["cohen_pairs"] = sorted(
        (
            {**row, "annotator_a": min(pair), "annotator_b": max(pair)}
            for row in report["cohen_pairs"]
            for pair in [(row["annotator_a"], row["annotator_b"])]
        ),
        key=lambda r: (r["annotator_a"], r["annotator_b"]),
    )
    report["flags"] = sorted(
        (
            (f["code"], f["level"], f["subject"], f["annotator"] or 0, round(f["value"], 9), f["threshold"])
            for f in report["flags"]
        ),
    )
    return report


def assert_close(stored, reference, path="report"):
    if isinstance(reference, dict):
        assert isinstance(stored, dict) and set(stored) == set(reference), (path, set(stored) ^ set(reference))
        for key in reference:
            assert_close(stored[key], reference[key], f"{path}.{key}")
    elif isinstance(reference, list | tuple):
        assert len(stored) == len(reference), path
        for i, (s, r) in enumerate(zip(stored, reference, strict=True)):
            assert_close(s, r, f"{path}[{i}]")
    elif isinstance(reference, float) and not isinstance(reference, bool):
        assert stored is not None and math.isclose(stored, reference, rel_tol=1e-9, abs_tol=1e-12), (
            path,
            stored,
            reference,
        )
    else:
        assert stored == reference, (path, stored, reference)


@pytest.fixture
def crowd_project(db):
    project = ProjectFactory(name="Crowd", overlap=3)
    annotators = [f"rater{i}" for i in range(6)]
    first = BatchFactory(project=project, name="first")
    fill_batch(first, seed=1, annotators=annotators[:5])
    # A new criteria version between batches, so the criteria shift runs on the stored baseline too.
    criteria_version_create(project=project, dimensions=[], disqualifiers=[], tie_rule="ties_block")
    second = BatchFactory(project=project, name="second")
    fill_batch(second, seed=2, annotators=annotators[1:])
    third = BatchFactory(project=project, name="third")
    fill_batch(third, seed=3, annotators=annotators)
    return project, [first, second, third]


def test_snapshot_stores_what_the_metrics_compute_from_the_raw_judgments_and_baseline(crowd_project):
    _, batches = crowd_project
    assert not AgreementSnapshot.objects.exists()

    snapshot = snapshot_compute(batch=batches[2])

    # The earlier batches had none: they got one first, oldest first, each on its own baseline.
    assert AgreementSnapshot.objects.count() == 3
    assert [s.batch_id for s in AgreementSnapshot.objects.order_by("pk")] == [b.pk for b in batches]
    reference = reference_reports(batches)
    for batch, expected in zip(batches, reference, strict=True):
        stored = AgreementSnapshot.objects.filter(batch=batch).latest("computed_at")
        assert stored.judgment_count == Judgment.objects.filter(batch=batch).count() == expected["n_judgments"]
        assert_close(comparable(stored.report), comparable(expected))
    assert snapshot.report["new_annotators"] is not None  # the baseline path ran
    assert snapshot.report["criteria_shift"] is not None  # two criteria versions between baseline and batch
    # Names for the dashboard: every per-annotator row and annotator flag carries the username.
    names = dict(Judgment.objects.values_list("annotator_id", "annotator__username"))
    assert all(row["username"] == names[row["annotator"]] for row in snapshot.report["annotators"])
    assert all(f["username"] == names[f["annotator"]] for f in snapshot.report["flags"] if f["annotator"])


def test_a_refresh_adds_a_newer_snapshot_and_keeps_the_old_one(crowd_project):
    _, batches = crowd_project
    first = snapshot_compute(batch=batches[0])
    item = ItemFactory(batch=batches[0])
    for username in ("rater0", "rater1", "rater2"):
        judge(item, username, "a")
    again = snapshot_compute(batch=batches[0])
    assert again.pk != first.pk and again.judgment_count == first.judgment_count + 3
    assert AgreementSnapshot.objects.filter(batch=batches[0]).count() == 2
    first.refresh_from_db()
    assert first.report["n_judgments"] == first.judgment_count


def test_snapshot_all_for_project_refreshes_every_batch_oldest_first(crowd_project):
    project, batches = crowd_project
    snapshots = snapshot_all_for_project(project_id=project.pk)
    assert [s.batch_id for s in snapshots] == [b.pk for b in batches]
    assert AgreementSnapshot.objects.count() == 3  # no batch was snapshotted twice
    for stored, expected in zip(snapshots, reference_reports(batches), strict=True):
        assert_close(comparable(stored.report), comparable(expected))


def test_flags_use_the_projects_rules(crowd_project):
    project, batches = crowd_project
    project.min_seconds_per_judgment = 8  # judgments take 1-40 s: about one in five is too fast
    project.save(update_fields=["min_seconds_per_judgment"])

    def fast_ones(snapshot, share: float, level: str = "warn") -> tuple[set, set]:
        flagged = {f["annotator"] for f in snapshot.report["flags"] if f["code"] == "too_fast" and f["level"] == level}
        rows = snapshot.report["annotators"]
        return flagged, {r["annotator"] for r in rows if r["too_fast"] / r["n_judgments"] > share}

    default = snapshot_compute(batch=batches[0])
    flagged, expected = fast_ones(default, 0.2)
    assert flagged == expected
    # Over 10 % (and not over 20 %) is watched, with the project's minimum in the message.
    watched, over_a_tenth = fast_ones(default, 0.1, level="watch")
    assert watched == over_a_tenth - expected
    assert all("minimum of 8 s" in f["message"] for f in default.report["flags"] if f["code"] == "too_fast")

    # A strict lead: any fast judgment flags its annotator, and any disagreement flags the batch.
    ProjectFlagRules.objects.create(project=project, rules={"too_fast_share_warn": 0.0, "batch_agreement_warn": 1.01})
    strict = snapshot_compute(batch=batches[0])
    flagged, expected = fast_ones(strict, 0.0)
    assert flagged == expected and len(expected) > len(fast_ones(default, 0.2)[1])
    thresholds = {f["threshold"] for f in strict.report["flags"] if f["code"] == "batch_agreement"}
    assert thresholds == {1.01}
    rules = FlagRules.from_dict({"too_fast_share_warn": 0.0, "batch_agreement_warn": 1.01})
    assert_close(comparable(strict.report), comparable(reference_reports(batches[:1], rules=rules)[0]))


def test_a_batch_without_judgments_gets_a_defined_snapshot(db):
    batch = BatchFactory(project=ProjectFactory(name="Empty"))
    ItemFactory(batch=batch)
    snapshot = snapshot_compute(batch=batch)
    summary = snapshot_summary(batch=batch, snapshot=snapshot)
    assert summary["judgments"] == 0 and summary["cohen_kappa"] is None and summary["annotators"] == []
    assert summary["judgments_per_hour"] == []


def test_judgments_per_hour_counts_the_batchs_judgments_by_utc_hour(crowd_project):
    _, batches = crowd_project
    batch = batches[1]
    ids = list(Judgment.objects.filter(batch=batch).order_by("id").values_list("id", flat=True))
    start = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    # First half at 09:xx, the rest at 11:xx: the empty hour between is listed with 0 so a chart has no gap.
    half = len(ids) // 2
    Judgment.objects.filter(id__in=ids[:half]).update(created_at=start + timedelta(minutes=59, seconds=59))
    Judgment.objects.filter(id__in=ids[half:]).update(created_at=start + timedelta(hours=2, minutes=1))
    snapshot = snapshot_compute(batch=batch)
    expected = [
        {"hour": "2024-03-01T09:00:00+00:00", "judgments": half},
        {"hour": "2024-03-01T10:00:00+00:00", "judgments": 0},
        {"hour": "2024-03-01T11:00:00+00:00", "judgments": len(ids) - half},
    ]
    assert snapshot.report["judgments_per_hour"] == expected
    assert snapshot_summary(batch=batch, snapshot=snapshot)["judgments_per_hour"] == expected


def test_selector_gives_the_judgments_in_the_order_they_were_made(crowd_project):
    _, batches = crowd_project
    batch = batches[0]
    ids = list(Judgment.objects.filter(batch=batch).order_by("-id").values_list("id", flat=True))
    now = timezone.now()
    for offset, pk in enumerate(ids):  # newest id first in time
        Judgment.objects.filter(pk=pk).update(created_at=now + timedelta(seconds=offset))
    index: dict[int, int] = {}
    got = batch_judgments(batch=batch, annotator_index=index).judgments
    expected = raw_judgments(Batch.objects.get(pk=batch.pk), {})
    assert got.label.tolist() == expected.label.tolist()
    assert got.seconds.tolist() == expected.seconds.tolist()
    assert got.gold.tolist() == expected.gold.tolist() and got.longer.tolist() == expected.longer.tolist()


def test_latest_snapshots_reads_one_row_per_batch_without_the_pairs_unless_asked(crowd_project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from rewards.selectors import latest_snapshots

    _, batches = crowd_project
    snapshot_compute(batch=batches[1])
    newest = snapshot_compute(batch=batches[1])
    with CaptureQueriesContext(connection) as queries:
        latest = latest_snapshots(batches=batches)
    assert len(queries) == 1
    assert set(latest) == {batches[0].pk, batches[1].pk} and latest[batches[1].pk].pk == newest.pk
    assert "cohen_pairs" not in latest[batches[1].pk].report
    assert latest[batches[1].pk].report["annotators"] == newest.report["annotators"]
    full = latest_snapshots(batches=batches, with_pairs=True)[batches[1].pk]
    assert full.report == AgreementSnapshot.objects.get(pk=newest.pk).report and full.report["cohen_pairs"]


def test_a_batch_keeps_its_newest_snapshots_only(crowd_project, settings):
    _, batches = crowd_project
    settings.TANDEM_SNAPSHOTS_KEPT_PER_BATCH = 2
    made = [snapshot_compute(batch=batches[0]).pk for _ in range(4)]
    assert sorted(AgreementSnapshot.objects.filter(batch=batches[0]).values_list("pk", flat=True)) == made[-2:]
