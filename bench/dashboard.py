"""Dashboard benchmark: the lead's project page with 1,000,000 judgments stored, on PostgreSQL.

    .venv/bin/python bench/dashboard.py --postgres-url postgres://postgres@127.0.0.1:5432/tandem_bench_dashboard
    .venv/bin/python bench/dashboard.py --batches 1          # one batch of 1,000,000 judgments
    .venv/bin/python bench/dashboard.py --reuse              # time again on the database left by the last run

Fills a fresh database (dropped and re-created) with one project: 200 annotators, --judgments judgments over
--batches batches, 3 per item (about 333,000 items of a few hundred characters each, 7 % gold), written with
COPY; then stores every batch's agreement snapshot through rewards.services.snapshots (twice, so each batch has an
older snapshot the page must skip). Then, in this process with DEBUG off, GETs /lead/projects/<id>/ through
Django's test client as the lead --repeat times and prints the response times, and the time of each read the page
makes. The figures go in bench/README.md, section "Dashboard".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from _postgres import bench_environment, fresh_database  # bench/_postgres.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/tandem_bench_dashboard"
LABELS = ("a", "b", "tie", "both_bad")


def _copy(cursor, table: str, columns: list[str], rows) -> None:
    """COPY rows (tuples; None is NULL) into table, in chunks of text."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def fill(*, judgments: int, batches: int, annotators: int, seed: int) -> int:
    """The project, its users and memberships, items, sessions, assignments and judgments. Returns the project id."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotation.models import Membership, Role
    from annotation.services import project_create
    from annotation.services.projects import project_current_criteria

    rng = np.random.default_rng(seed)
    User = get_user_model()
    project = project_create(name="bench")
    criteria = project_current_criteria(project=project)
    lead = User.objects.create_user("lead")  # the bench logs in with force_login
    users = User.objects.bulk_create([User(username=f"annotator{k:03d}") for k in range(annotators)])
    Membership.objects.bulk_create(
        [Membership(project=project, user=lead, role=Role.LEAD)]
        + [Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users]
    )
    user_ids = np.array([u.pk for u in users])
    accuracy = rng.uniform(0.6, 0.97, size=annotators)
    words = [
        "the",
        "a",
        "model",
        "answer",
        "question",
        "because",
        "which",
        "could",
        "data",
        "value",
        "result",
        "example",
    ]
    pool = " ".join(rng.choice(words, size=20_000).tolist())
    start = datetime(2026, 1, 5, 8, tzinfo=UTC)
    overlap = project.overlap
    per_batch = judgments // batches
    items_per_batch = per_batch // overlap
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor
        sessions = {}
        for user_id in user_ids.tolist():
            cursor.execute(
                "INSERT INTO annotation_annotationsession (project_id, annotator_id, started_at, expires_at,"
                " max_tasks, tasks_done, kind) VALUES (%s, %s, %s, %s, %s, 0, 'comparison') RETURNING id",
                [project.pk, user_id, start, start + timedelta(days=365), 10_000_000],
            )
            sessions[user_id] = cursor.fetchone()[0]
        for b in range(batches):
            t0 = time.perf_counter()
            cursor.execute(
                "INSERT INTO annotation_batch (project_id, name, criteria_version_id, status, created_at, kind,"
                " source_format, writers_per_item) VALUES (%s, %s, %s, %s, %s, 'comparison', '', 1) RETURNING id",
                [
                    project.pk,
                    f"week {b + 1}",
                    criteria.pk,
                    "closed" if b < batches - 1 else "open",
                    start + timedelta(days=7 * b),
                ],
            )
            batch_id = cursor.fetchone()[0]
            # The open batch has more items, a fifth of them short of judgments (a third of the overlap on
            # average), so that it still holds its share of the judgments.
            n = items_per_batch if b < batches - 1 else round(items_per_batch / (0.8 + 0.2 / 3))
            truth = rng.choice(4, size=n, p=[0.42, 0.42, 0.1, 0.06])
            gold = np.where((rng.random(n) < 0.07) & (truth < 3), truth, -1)
            # Judgments per item: the project's overlap, except in the open (last) batch, whose last fifth of
            # items are still short of judgments (0 to overlap - 1 of them), so % complete has items to count.
            wanted = np.full(n, overlap)
            if b == batches - 1:
                tail = np.arange(n) >= int(0.8 * n)
                wanted[tail] = rng.integers(0, overlap, size=int(tail.sum()))
            offsets = rng.integers(0, len(pool) - 1500, size=(n, 3))
            lengths = rng.integers(200, 1200, size=(n, 2))
            created = start + timedelta(days=7 * b)
            _copy(
                raw,
                "annotation_item",
                [
                    "project_id", "batch_id", "external_id", "dedupe_key", "prompt", "response_a_text",
                    "response_a_model", "response_b_text", "response_b_model", "stratum", "category", "gold",
                    "labelled_choice", "judgment_count", "extra_judgments", "created_at",
                ],
                (
                    (
                        project.pk, batch_id, f"b{b}-{i}", f"id:b{b}-{i}",
                        pool[offsets[i, 0] : offsets[i, 0] + 160],
                        pool[offsets[i, 1] : offsets[i, 1] + lengths[i, 0]], "sft-7b",
                        pool[offsets[i, 2] : offsets[i, 2] + lengths[i, 1]], "sft-7b-t0.9",
                        "usage", "", "" if gold[i] < 0 else LABELS[gold[i]], "", int(wanted[i]), 0, created,
                    )
                    for i in range(n)
                ),
            )  # fmt: skip
            cursor.execute("SELECT id FROM annotation_item WHERE batch_id = %s ORDER BY id", [batch_id])
            item_ids = np.array([r[0] for r in cursor.fetchall()])
            # overlap distinct annotators per item.
            draws = np.sort(rng.integers(0, annotators - overlap + 1, size=(n, overlap)), axis=1) + np.arange(overlap)
            who = rng.permuted(draws, axis=1).ravel()
            item = np.repeat(np.arange(n), overlap)
            keep = np.tile(np.arange(overlap), n) < wanted[item]
            who, item = who[keep], item[keep]
            right = rng.random(item.size) < accuracy[who]
            label = np.where(right, truth[item], (truth[item] + rng.integers(1, 4, size=item.size)) % 4)
            left_is_a = rng.random(item.size) < 0.5
            seconds = rng.lognormal(np.log(20.0), 0.6, size=item.size)
            when = [created + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 5 * 86400, size=item.size))]
            assignment = [uuid.uuid4() for _ in range(item.size)]
            _copy(
                raw,
                "annotation_assignment",
                ["id", "session_id", "item_id", "annotator_id", "left_is_a", "leased_at", "lease_expires_at", "judged_at"],
                (
                    (assignment[j], sessions[int(user_ids[who[j]])], int(item_ids[item[j]]), int(user_ids[who[j]]),
                     bool(left_is_a[j]), when[j], when[j] + timedelta(minutes=10), when[j])
                    for j in range(item.size)
                ),
            )  # fmt: skip
            _copy(
                raw,
                "annotation_judgment",
                [
                    "assignment_id", "item_id", "batch_id", "annotator_id", "choice", "shown_left", "dimensions",
                    "justification", "seconds", "too_fast", "is_gold", "gold_correct", "created_at",
                ],
                (
                    (assignment[j], int(item_ids[item[j]]), batch_id, int(user_ids[who[j]]), LABELS[label[j]],
                     "a" if left_is_a[j] else "b", "{}", "", float(seconds[j]), bool(seconds[j] < 3),
                     bool(gold[item[j]] >= 0), (bool(label[j] == gold[item[j]]) if gold[item[j]] >= 0 else None), when[j])
                    for j in range(item.size)
                ),
            )  # fmt: skip
            print(f"  batch {b + 1}: {n:,} items, {item.size:,} judgments written in {time.perf_counter() - t0:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return project.pk


def snapshot(project_id: int, rounds: int) -> None:
    from rewards.services.snapshots import snapshot_all_for_project

    for r in range(rounds):
        t0 = time.perf_counter()
        snapshot_all_for_project(project_id=project_id)
        print(f"  snapshots, round {r + 1}: {time.perf_counter() - t0:.1f} s for every batch")


def _timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _row(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"| {name} | {statistics.median(ms):.1f} | {p95:.1f} | {ms[0]:.1f} |"


def measure(repeat: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection, reset_queries
    from django.test import Client

    from annotation.models import Judgment, Project
    from frontend.dashboard import batch_progress, latest_snapshots_light, project_dashboard
    from rewards.models import AgreementSnapshot
    from rewards.selectors import project_agreement

    project = Project.objects.get(name="bench")
    client = Client()
    client.force_login(get_user_model().objects.get(username="lead"))
    url = f"/lead/projects/{project.pk}/"
    batches = list(project.batches.order_by("created_at"))
    stored = Judgment.objects.count()
    snapshots = AgreementSnapshot.objects.filter(batch__project=project).count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(avg(pg_column_size(report))::bigint) FROM rewards_agreementsnapshot")
        report_size = cursor.fetchone()[0]
    print(
        f"{stored:,} judgments, {len(batches)} batches, {snapshots} snapshots "
        f"(stored report {report_size} each, compressed), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    reset_queries()
    print("| what | median ms | p95 ms | best ms |")
    print("| --- | ---: | ---: | ---: |")
    print(
        _row(
            f"GET {url} (whole page, {len(response.content) / 1024:.0f} KB of HTML)",
            _timed(lambda: client.get(url), repeat),
        )
    )
    print(
        _row(
            "  latest snapshot per batch, report without cohen_pairs and drift",
            _timed(lambda: latest_snapshots_light(batches=batches), repeat),
        )
    )
    print(
        _row(
            "  % complete: items per batch from Item.judgment_count",
            _timed(lambda: batch_progress(batches=batches, overlap=project.overlap), repeat),
        )
    )
    print(
        _row(
            "  project_dashboard (all reads + shaping, no template)",
            _timed(lambda: project_dashboard(project=project), repeat),
        )
    )
    print(
        _row(
            "for comparison: rewards.selectors.project_agreement (the API's read: drift kept)",
            _timed(lambda: project_agreement(project=project), max(3, repeat // 4)),
        )
    )
    member = AgreementSnapshot.objects.filter(batch=batches[-1]).latest("computed_at").report["annotators"][0]
    annotator_url = f"{url}annotators/{member['annotator']}/"
    print(_row(f"GET {annotator_url} (annotator page)", _timed(lambda: client.get(annotator_url), repeat)))
    # The split-items page computes from the votes (rewards.services.pairs): the newest batch by default, or all.
    split = f"{url}split-items/"
    print(_row(f"GET {split} (split items, newest batch: the default)", _timed(lambda: client.get(split), 3)))
    print(
        _row(f"GET {split}?batch=all (split items, every batch)", _timed(lambda: client.get(f"{split}?batch=all"), 1))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--snapshot-rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="skip the fill: time the database of the last run")
    parser.add_argument("--workdir", default="/tmp/tandem-bench-dashboard")
    args = parser.parse_args()

    bench_environment(database_url=args.postgres_url, workdir=args.workdir)
    if not args.reuse:
        fresh_database(args.postgres_url)
    import django

    django.setup()
    if not args.reuse:
        t0 = time.perf_counter()
        project_id = fill(judgments=args.judgments, batches=args.batches, annotators=args.annotators, seed=3)
        print(f"filled in {time.perf_counter() - t0:.0f} s")
        snapshot(project_id, args.snapshot_rounds)
    measure(args.repeat)


if __name__ == "__main__":
    main()
