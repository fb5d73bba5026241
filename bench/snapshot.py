"""Snapshot benchmark: `snapshot_compute` for a batch of 1,000,000 judgments from 200 annotators, on PostgreSQL, and
the lead's reads of the stored result (the agreement API, and the dashboard page when it exists).

    .venv/bin/python bench/snapshot.py                   # builds tandem_bench_snapshot the first time, then times
    .venv/bin/python bench/snapshot.py --rebuild         # drop and build the database again
    .venv/bin/python bench/snapshot.py --profile         # cProfile of one snapshot_compute (top 25 by cumulative)

The database holds one project with two batches: "earlier" (--earlier judgments) and "big" (--judgments), items
with an overlap of 3 to 5 (so about 250,000 items in the big batch), 6 % gold, responses of varied lengths, sides
and seconds drawn per judgment, judgments spread over two weeks; 200 annotators of different accuracy, one with a
left bias. Rows are written with COPY. Each run deletes the stored agreement snapshots, then times:

1. snapshot_compute(big) while "earlier" has no snapshot: earlier's is computed first (its own baseline is empty);
2. snapshot_compute(big) again, the usual refresh: earlier's stored snapshot is the baseline;
3. the parts of (2): batch_judgments (the read), batch_report (the metrics), the rest (baseline, flags, store);
4. GET /api/v1/projects/<id>/agreement/ as the lead (Django test client, DEBUG off), --repeat times;
5. GET /lead/projects/<id>/ the same way, if that page answers 200 (else "not measured");
6. GET /api/v1/projects/<id>/split-items/?batch=<big> the same way (computed per request from the votes).

Figures go in bench/README.md, section "Snapshot".
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _postgres import bench_environment, fresh_database, migrate  # bench/_postgres.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/tandem_bench_snapshot"
PROJECT = "bench-snapshot"
LABELS = np.array(["a", "b", "tie", "both_bad"])
WORDS = np.array(
    [
        "the",
        "a",
        "model",
        "answer",
        "question",
        "because",
        "however",
        "therefore",
        "which",
        "would",
        "could",
        "should",
        "response",
        "prompt",
        "user",
        "data",
        "reward",
        "policy",
        "python",
        "function",
        "return",
        "value",
        "error",
        "example",
        "explain",
        "step",
        "first",
        "second",
        "result",
        "list",
        "code",
    ]
)


# --- Building the database ----------------------------------------------------------------------------------


def database_built(database_url: str) -> bool:
    """The database exists and a build finished in it (the build is one transaction)."""
    import psycopg

    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM annotation_project WHERE name = %s", [PROJECT]).fetchone()
    except psycopg.Error:
        return False
    return found is not None


def _copy_frame(cursor, table: str, columns: dict[str, object], n: int) -> None:
    """COPY n rows given column-wise (NumPy arrays or scalars repeated) as CSV; None in an object array is NULL."""
    import pandas as pd

    frame = pd.DataFrame({name: (v if isinstance(v, np.ndarray | list) else [v] * n) for name, v in columns.items()})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, na_rep="\\N")
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy:
        copy.write(buffer.getvalue())


def _texts(rng, n: int, median_words: int) -> np.ndarray:
    lengths = np.clip((rng.lognormal(0, 0.6, n) * median_words).astype(int), 3, 400)
    pool = " ".join(rng.choice(WORDS, 20_000))
    starts = rng.integers(0, len(pool) - 3000, n)
    # Word-ish slices of one pool: cheap, varied, and about the right length in characters.
    return np.array([pool[s : s + 6 * k] for s, k in zip(starts.tolist(), lengths.tolist(), strict=True)], dtype=object)


def _fill_batch(cursor, *, rng, project_id, batch_id, users, accuracy, judgments, start, tag) -> None:
    """Items, sessions, assignments and judgments of one batch, about `judgments` judgments."""
    n_users = len(users)
    overlap = rng.choice([3, 4, 5], size=judgments // 3 + 1, p=[0.35, 0.35, 0.3])
    cut = int(np.searchsorted(np.cumsum(overlap), judgments))
    overlap = overlap[: cut + 1]
    n_items = len(overlap)
    gold = np.where(rng.random(n_items) < 0.06, rng.choice(["a", "b"], n_items), "")
    truth = np.where(gold != "", np.where(gold == "a", 0, 1), rng.choice(4, n_items, p=[0.42, 0.42, 0.1, 0.06]))
    now = datetime.now(UTC).isoformat()
    item_first = cursor.execute("SELECT nextval(pg_get_serial_sequence('annotation_item', 'id'))").fetchone()[0]
    cursor.execute(
        "SELECT setval(pg_get_serial_sequence('annotation_item', 'id'), %s)", [item_first + n_items]
    )  # reserve the ids
    item_ids = np.arange(item_first + 1, item_first + 1 + n_items)
    ext = np.char.add(f"{tag}-", item_ids.astype(str))
    _copy_frame(
        cursor,
        "annotation_item",
        {
            "id": item_ids,
            "project_id": project_id,
            "batch_id": batch_id,
            "external_id": ext,
            "dedupe_key": np.char.add("id:", ext),
            "prompt": _texts(rng, n_items, 12),
            "messages": None,
            "response_a_text": _texts(rng, n_items, 60),
            "response_a_model": "sft-7b",
            "response_b_text": _texts(rng, n_items, 70),
            "response_b_model": "sft-7b-t0.9",
            "stratum": "usage",
            "category": "",
            "gold": gold,
            "judgment_count": overlap,
            "extra_judgments": overlap - 3,
            "created_at": now,
        },
        n_items,
    )
    # Distinct annotators per item: a start and a step with overlap * step < 200 never wrap onto themselves.
    item = np.repeat(np.arange(n_items), overlap)
    slot = np.arange(item.size) - np.repeat(np.cumsum(overlap) - overlap, overlap)
    first = rng.integers(0, n_users, n_items)
    step = rng.integers(1, n_users // 5, n_items)
    annotator = (first[item] + slot * step[item]) % n_users
    n = item.size
    correct = rng.random(n) < accuracy[annotator]
    label = np.where(correct, truth[item], rng.choice(4, n, p=[0.4, 0.4, 0.12, 0.08]))
    shown_left_a = rng.random(n) < 0.5
    left_biased = annotator == 7  # annotator 7 picks the left response 70 % of the time on a/b choices
    flip = left_biased & (label < 2) & (rng.random(n) < 0.4)
    label = np.where(flip, np.where(shown_left_a, 0, 1), label)
    seconds = np.round(rng.lognormal(np.log(25), 0.6, n), 3)
    created = start + (rng.random(n) * 14 * 86400).astype("timedelta64[s]")
    order = np.argsort(created, kind="stable")
    item, annotator, label, shown_left_a, seconds, created = (
        a[order] for a in (item, annotator, label, shown_left_a, seconds, created)
    )
    created_text = np.datetime_as_string(created, unit="s", timezone="UTC")

    session_first = cursor.execute(
        "SELECT nextval(pg_get_serial_sequence('annotation_annotationsession', 'id'))"
    ).fetchone()[0]
    cursor.execute(
        "SELECT setval(pg_get_serial_sequence('annotation_annotationsession', 'id'), %s)", [session_first + n_users]
    )
    session_ids = np.arange(session_first + 1, session_first + 1 + n_users)
    _copy_frame(
        cursor,
        "annotation_annotationsession",
        {
            "id": session_ids,
            "project_id": project_id,
            "annotator_id": users,
            "started_at": now,
            "expires_at": now,
            "max_tasks": 10**9,
            "tasks_done": np.bincount(annotator, minlength=n_users),
            "ended_at": now,
        },
        n_users,
    )
    assignment = np.array([f"{tag_uuid(tag)}{k:020x}" for k in range(n)], dtype=object)
    gold_of = gold[item]
    _copy_frame(
        cursor,
        "annotation_assignment",
        {
            "id": assignment,
            "session_id": session_ids[annotator],
            "item_id": item_ids[item],
            "annotator_id": users[annotator],
            "left_is_a": shown_left_a,
            "leased_at": created_text,
            "lease_expires_at": created_text,
            "judged_at": created_text,
        },
        n,
    )
    choice = LABELS[label]
    gold_correct = np.where(gold_of == "", None, choice == gold_of).astype(object)
    _copy_frame(
        cursor,
        "annotation_judgment",
        {
            "assignment_id": assignment,
            "item_id": item_ids[item],
            "batch_id": batch_id,
            "annotator_id": users[annotator],
            "choice": choice,
            "shown_left": np.where(shown_left_a, "a", "b"),
            "dimensions": "{}",
            "justification": "",
            "seconds": seconds,
            "too_fast": seconds < 3,
            "is_gold": gold_of != "",
            "gold_correct": gold_correct,
            "created_at": created_text,
        },
        n,
    )
    print(f"  batch {tag}: {n_items:,} items, {n:,} judgments")


def tag_uuid(tag: str) -> str:
    return {"earlier": "0000000000a1", "big": "0000000000b2"}[tag]


def build(*, judgments: int, earlier: int, annotators: int, seed: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotation.models import Batch, Membership, Role
    from annotation.services import project_create
    from annotation.services.projects import project_current_criteria

    rng = np.random.default_rng(seed)
    user_model = get_user_model()
    with transaction.atomic():
        project = project_create(name=PROJECT)
        criteria = project_current_criteria(project=project)
        lead = user_model.objects.create_user("lead")
        users = user_model.objects.bulk_create([user_model(username=f"annotator{k:03d}") for k in range(annotators)])
        Membership.objects.bulk_create(
            [Membership(project=project, user=lead, role=Role.LEAD)]
            + [Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users]
        )
        user_ids = np.array([u.pk for u in users])
        accuracy = rng.uniform(0.65, 0.95, size=annotators)
        older = Batch.objects.create(project=project, name="earlier", criteria_version=criteria, status="closed")
        big = Batch.objects.create(project=project, name="big", criteria_version=criteria)
        with connection.cursor() as wrapper:
            cursor = wrapper.cursor
            start = np.datetime64("2026-01-05T08:00:00")
            _fill_batch(
                cursor,
                rng=rng,
                project_id=project.pk,
                batch_id=older.pk,
                users=user_ids,
                accuracy=accuracy,
                judgments=earlier,
                start=start,
                tag="earlier",
            )
            _fill_batch(
                cursor,
                rng=rng,
                project_id=project.pk,
                batch_id=big.pk,
                users=user_ids,
                accuracy=accuracy,
                judgments=judgments,
                start=start + np.timedelta64(14, "D"),
                tag="big",
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


# --- Timing -------------------------------------------------------------------------------------------------


def timed(label: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    value = fn(*args, **kwargs)
    print(f"{label}: {time.perf_counter() - t0:.2f} s")
    return value


def measure(*, repeat: int, profile: bool) -> None:
    from django.db.models import Count
    from django.test import Client

    from annotation.models import Batch, Judgment, Project
    from rewards.metrics import batch_report
    from rewards.models import AgreementSnapshot
    from rewards.selectors import batch_judgments
    from rewards.services.snapshots import snapshot_compute

    project = Project.objects.get(name=PROJECT)
    big = Batch.objects.select_related("project", "criteria_version").get(project=project, name="big")
    counts = dict(
        Judgment.objects.filter(batch__project=project).values_list("batch__name").annotate(n=Count("id")).order_by()
    )
    print(f"judgments stored: {counts}")
    AgreementSnapshot.objects.filter(batch__project=project).delete()

    timed("1. snapshot_compute(big), earlier batch not yet snapshotted (computes both)", snapshot_compute, batch=big)
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
    snapshot = timed("2. snapshot_compute(big), earlier's stored snapshot as baseline", snapshot_compute, batch=big)
    if profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    print(
        f"   report: {snapshot.report['n_judgments']:,} judgments, {snapshot.report['n_items']:,} items,"
        f" {snapshot.report['n_annotators']} annotators, kappa {snapshot.report['cohen_kappa']['value']:.3f},"
        f" {len(snapshot.report['flags'])} flags, {len(snapshot.report['judgments_per_hour'])} hours"
    )
    index: dict[int, int] = {}
    current = timed("3a. batch_judgments(big) (the read)", batch_judgments, batch=big, annotator_index=index)
    timed(
        "3b. batch_report(big) without baseline (the metrics)",
        batch_report,
        current.judgments,
        raters=3,
        min_seconds=3.0,
    )

    client = Client()
    client.force_login(project.memberships.get(role="lead").user)
    for label, url in (
        ("4. GET agreement API", f"/api/v1/projects/{project.pk}/agreement/"),
        ("5. GET lead dashboard page", f"/lead/projects/{project.pk}/"),
        ("6. GET split items of the big batch", f"/api/v1/projects/{project.pk}/split-items/?batch={big.pk}"),
    ):
        first = client.get(url)
        if first.status_code != 200:
            print(f"{label} {url}: {first.status_code}, not measured")
            continue
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200
        times.sort()
        print(
            f"{label} {url}: median {statistics.median(times):.1f} ms, p90 {times[int(0.9 * (len(times) - 1))]:.1f} ms,"
            f" max {times[-1]:.1f} ms over {repeat}; {len(first.content):,} bytes"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--earlier", type=int, default=200_000, help="judgments in the earlier batch")
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--rebuild", action="store_true", help="drop and build the database even if it exists")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--workdir", default="/tmp/tandem-bench-snapshot")
    args = parser.parse_args()

    bench_environment(database_url=args.postgres_url, workdir=args.workdir)
    rebuild = args.rebuild or not database_built(args.postgres_url)
    if rebuild:
        fresh_database(args.postgres_url)
    else:  # a kept database gets the migrations added since it was built
        migrate()
    import django

    django.setup()
    if rebuild:
        timed(
            "built the database",
            build,
            judgments=args.judgments,
            earlier=args.earlier,
            annotators=args.annotators,
            seed=5,
        )
    measure(repeat=args.repeat, profile=args.profile)


if __name__ == "__main__":
    main()
