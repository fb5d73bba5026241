"""Checkpoints page benchmark: a project's leaderboard page with 50 checkpoints and 200,000 evaluation judgments.

    .venv/bin/python bench/checkpoints_page.py                      # SQLite, in a fresh file under --workdir
    .venv/bin/python bench/checkpoints_page.py --postgres-url postgres://postgres@127.0.0.1:5432/tandem_bench_ckpt
    .venv/bin/python bench/checkpoints_page.py --postgres-url ... --redis-url redis://127.0.0.1:6379/15

Fills a fresh database with one project: a base model and --checkpoints checkpoints of one policy run, each
sampled on an evaluation set of --prompts prompts (a generate run with one generation per prompt), and one
evaluation batch per checkpoint against the one before (the first against the base), judged by --annotators
simulated annotators per item: --checkpoints x --prompts x --annotators judgments (50 x 800 x 5 = 200,000), written
with bulk_create by tests/evaluation/results_world.py. Then, in this process with DEBUG off:

- the refresh a worker runs (evaluation.services.leaderboards.leaderboard_refresh: Bradley-Terry with the project's
  bootstrap resamples, win rates, strata, stored as a LeaderboardSnapshot), and the computation alone at 200
  resamples;
- GET /projects/<id>/checkpoints/ through Django's test client as the lead, --repeat times (median): the page reads
  the stored leaderboard and checks it is current (no computation);
- one more vote, then the page again --repeat times: it shows the stored board as "refreshing" (its first view also
  stores one refresh request in the task outbox);
- the page with no stored leaderboard ("not computed yet").
Figures in bench/README.md, "Checkpoints page".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def fill(*, checkpoints: int, prompts: int, annotators: int, seed: int) -> int:
    import numpy as np
    from django.contrib.auth import get_user_model

    from annotation.models import Membership, Role
    from annotation.services import project_create
    from tests.evaluation.results_world import add_evaluation_batch, add_player, make_world

    rng = np.random.default_rng(seed)
    project = project_create(name="bench checkpoints")
    lead = get_user_model().objects.create_user("lead")
    Membership.objects.create(project=project, user=lead, role=Role.LEAD)
    world = make_world(project, prompts=prompts)
    previous = add_player(world, step=None, mean_reward=0.0, rewards=rng.normal(size=prompts).tolist())
    for k in range(1, checkpoints + 1):
        t0 = time.perf_counter()
        player = add_player(
            world,
            step=10 * k,
            mean_reward=0.02 * k,
            rewards=rng.normal(loc=0.02 * k, size=prompts).tolist(),
            lengths=(40 + k, 80 + 2 * k),
        )
        # Early checkpoints gain, later ones flatten: shares 0.70 down to 0.50.
        share = max(0.5, 0.7 - 0.01 * k)
        add_evaluation_batch(world, candidate=player, baseline=previous, share=share, annotators=annotators)
        previous = player
        print(f"  batch {k}/{checkpoints}: {time.perf_counter() - t0:.1f} s", flush=True)
    return project.pk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default="", help="PostgreSQL database to drop, create and fill.")
    parser.add_argument("--redis-url", default="", help="Redis as Django's cache and the broker (else none).")
    parser.add_argument("--workdir", default="", help="Where the SQLite file and var/ go (a temporary folder).")
    parser.add_argument("--checkpoints", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=800)
    parser.add_argument("--annotators", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="Time again on the database the last run left.")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-checkpoints-"))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "var").mkdir(exist_ok=True)
    if args.postgres_url:
        from _postgres import bench_environment, fresh_database

        bench_environment(database_url=args.postgres_url, workdir=str(workdir))
        if not args.reuse:
            fresh_database(args.postgres_url)
    else:
        from _postgres import bench_environment, migrate

        db = workdir / "bench.sqlite3"
        if not args.reuse:
            db.unlink(missing_ok=True)
        bench_environment(database_url=f"sqlite:///{db}", workdir=str(workdir))
        if not args.reuse:
            migrate()
    os.environ.pop("REDIS_URL", None)
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url

    if args.reuse:  # a database filled by an older version may lack newer tables
        from _postgres import migrate

        migrate()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from annotation.models import Judgment, Project
    from core.models import OutboxMessage
    from evaluation.models import LeaderboardSnapshot
    from evaluation.selectors_results import project_leaderboard
    from evaluation.services.leaderboards import leaderboard_refresh

    t0 = time.perf_counter()
    if args.reuse:
        project_id = Project.objects.get(name="bench checkpoints").pk
    else:
        project_id = fill(
            checkpoints=args.checkpoints, prompts=args.prompts, annotators=args.annotators, seed=args.seed
        )
    print(f"fill: {time.perf_counter() - t0:.1f} s, {Judgment.objects.count():,} judgments", flush=True)
    cache.clear()
    LeaderboardSnapshot.objects.filter(project_id=project_id).delete()
    OutboxMessage.objects.filter(key=f"project:{project_id}:leaderboard").delete()

    project = Project.objects.get(pk=project_id)
    t0 = time.perf_counter()
    board = project_leaderboard(project=project, resamples=200, use_cache=False)
    compute_200 = time.perf_counter() - t0

    client = Client()
    client.force_login(get_user_model().objects.get(username="lead"))
    url = f"/projects/{project_id}/checkpoints/"

    def timed(state: str) -> tuple[list[float], int]:
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.status_code
            assert f'data-state="{state}"'.encode() in response.content, state
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        return times, len(queries.captured_queries)

    missing, missing_queries = timed("not-computed")
    t0 = time.perf_counter()
    snapshot = leaderboard_refresh(project_id=project_id)
    refresh = time.perf_counter() - t0
    current, current_queries = timed("current")
    assert client.get(url).content.count(b'<tr data-key="') == args.checkpoints + 1
    one_more_vote(project)
    stale, stale_queries = timed("stale")
    asked = OutboxMessage.objects.filter(key=f"project:{project_id}:leaderboard").count()

    backend = "PostgreSQL" if args.postgres_url else "SQLite"
    ms = lambda xs: f"{1000 * statistics.median(xs):.0f} ms  (all: {', '.join(f'{1000 * x:.0f}' for x in xs)})"  # noqa: E731
    print()
    print(f"{backend}: {board['counts']['judgments']:,} judgments, {len(board['players'])} players")
    print(f"leaderboard computed, 200 resamples:                 {compute_200:.2f} s")
    print(
        f"refresh (worker), {snapshot.data['resamples']} resamples, stored:        {refresh:.2f} s"
        f"  ({len(json.dumps(snapshot.data)) / 1024:.0f} KiB of JSON)"
    )
    print(f"page, stored and current, median of {args.repeat}:  {ms(current)}, {current_queries} queries")
    print(f"page, stored and stale (refreshing), median of {args.repeat}: {ms(stale)}, {stale_queries} queries")
    print(f"page, not computed yet, median of {args.repeat}:    {ms(missing)}, {missing_queries} queries")
    print(f"refresh requests stored in the outbox by {3 * (args.repeat + 1)} page views: {asked}")


def one_more_vote(project) -> None:
    """One judgment on the first evaluation item, from a new annotator, as the annotator loop stores it."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from annotation.models import AnnotationSession, Assignment, Judgment
    from evaluation.models import EvaluationItem

    evaluation_item = EvaluationItem.objects.filter(evaluation_batch__batch__project=project).select_related("item")[0]
    item = evaluation_item.item
    user = get_user_model().objects.create_user(f"bench-extra-{time.time_ns()}")
    now = timezone.now()
    session = AnnotationSession.objects.create(
        project=project, annotator=user, started_at=now, expires_at=now + timedelta(hours=1), max_tasks=10
    )
    lease = Assignment.objects.create(
        session=session, item=item, annotator=user, left_is_a=True, leased_at=now,
        lease_expires_at=now + timedelta(minutes=5), judged_at=now,
    )  # fmt: skip
    Judgment.objects.create(
        assignment=lease, item=item, batch_id=item.batch_id, annotator=user, shown_left="a", seconds=5, choice="a"
    )


if __name__ == "__main__":
    main()
