"""Hand-off package benchmark: `handoff_build` for a release whose lineage holds --judgments judgments over 5 batches.

    .venv/bin/python bench/handoff.py                         # SQLite, 1,000,000 judgments, in a fresh temp folder
    .venv/bin/python bench/handoff.py --judgments 100000      # the same at a tenth: memory should not follow
    .venv/bin/python bench/handoff.py --workdir DIR --reuse      # time again on the database a run left in DIR
    .venv/bin/python bench/handoff.py --postgres-url postgres://postgres@127.0.0.1:5432/tandem_bench_handoff

Fills a fresh database with one project: 5 closed comparison batches (3 judgments an item, 3 strata, 40
categories, an import record each) holding --judgments judgments from 60 annotators, written with bulk_create; each
batch's agreement report stored as the dashboard's refresh stores it (an AgreementSnapshot with per-annotator
entries); a dataset snapshot of the 5 batches (row and manifest file); a reward-model run and a PPO run trained
on it, the PPO run's final checkpoint with a 64 MiB weights file; an evaluation set of 300 prompts, the base model
and the checkpoint sampled on it, an evaluation batch of 900 judgments, a gate policy, an approving decision and a
release. Then, in this process: handoff_build(release) timed (best of --repeat), and once more under tracemalloc
(peak of Python allocations during the build) with the process's peak RSS (ru_maxrss) before and after.
Figures in bench/README.md, "Hand-off package".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BATCHES = 5
OVERLAP = 3
ANNOTATORS = 60
STRATA = ("usage", "synthetic", "adversarial")
CHUNK = 20_000


def _fill_batch(project, batch, *, items: int, users, sessions, index: int) -> None:
    from django.utils import timezone

    from annotation.models import Assignment, Item, Judgment

    now = timezone.now()
    for start in range(0, items, CHUNK):
        n = min(CHUNK, items - start)
        rows = Item.objects.bulk_create(
            [
                Item(
                    project=project,
                    batch=batch,
                    external_id=f"b{index}-{start + i}",
                    dedupe_key=f"id:b{index}-{start + i}",
                    prompt=f"Prompt {start + i} of batch {index}: explain the thing.",
                    response_a_text=f"Answer A {start + i}",
                    response_b_text=f"Answer B {start + i}",
                    stratum=STRATA[(start + i) % 3],
                    category=f"category-{(start + i) % 40}",
                    judgment_count=OVERLAP,
                )
                for i in range(n)
            ],
            batch_size=5000,
        )
        if rows[0].pk is None:
            rows = list(Item.objects.filter(batch=batch, external_id__in=[r.external_id for r in rows]).order_by("pk"))
        assignments, judgments = [], []
        for k, item in enumerate(rows):
            for j in range(OVERLAP):
                user = users[(start + k + 7 * j) % len(users)]
                a = Assignment(
                    id=uuid.uuid4(),
                    session=sessions[user.pk],
                    item=item,
                    annotator=user,
                    left_is_a=True,
                    leased_at=now,
                    lease_expires_at=now + timedelta(minutes=10),
                    judged_at=now,
                )
                assignments.append(a)
                choice = "a" if (k + j) % 4 else "b"
                judgments.append(
                    Judgment(
                        assignment=a,
                        item=item,
                        batch=batch,
                        annotator=user,
                        choice=choice,
                        dimensions={"helpfulness": choice, "honesty": "a"},
                        shown_left="a",
                        seconds=12.0,
                    )
                )
        Assignment.objects.bulk_create(assignments, batch_size=5000)
        Judgment.objects.bulk_create(judgments, batch_size=5000)


def _report(n_judgments: int, n_items: int, users) -> dict:
    """An agreement report shaped like rewards' (the fields the package reads, per-annotator entries for size)."""
    coefficient = {"value": 0.61, "low": 0.58, "high": 0.64, "n": n_items, "observed": 0.8, "expected": 0.49}
    return {
        "n_judgments": n_judgments,
        "n_items": n_items,
        "n_annotators": len(users),
        "label_counts": {"a": n_judgments * 3 // 4, "b": n_judgments // 4},
        "cohen_pairs": None,
        "cohen_kappa": coefficient,
        "fleiss_kappa": coefficient,
        "krippendorff_alpha": coefficient,
        "agreement": {"successes": 0.8 * n_items, "n": n_items, "value": 0.8, "low": 0.79, "high": 0.81},
        "gold_accuracy": {"successes": 90, "n": 100, "value": 0.9, "low": 0.82, "high": 0.95},
        "annotators": [
            {"annotator": u.pk, "username": u.username, "judgments": n_judgments // len(users), "kappa": 0.6}
            for u in users
        ],
        "drift": [],
        "flags": [{"code": "batch_kappa", "level": "warn", "message": "bench flag"}],
    }


def fill(*, judgments: int, seed: int) -> int:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from annotation.models import AnnotationSession, Batch, ImportRecord, Membership, Role
    from annotation.services import project_create
    from annotation.services.projects import project_current_criteria
    from evaluation.models import GateDecision, GatePolicy, Release
    from rewards.models import AgreementSnapshot, DatasetSnapshot
    from tests.evaluation.results_world import add_evaluation_batch, add_player, make_world
    from trainer.models import Checkpoint, Kind, Status, TrainingRun

    User = get_user_model()
    project = project_create(name="bench handoff")
    lead = User.objects.create_user("lead")
    reviewer = User.objects.create_user("reviewer")
    Membership.objects.create(project=project, user=lead, role=Role.LEAD)
    Membership.objects.create(project=project, user=reviewer, role=Role.REVIEWER)
    users = User.objects.bulk_create([User(username=f"annotator-{k}") for k in range(ANNOTATORS)])
    if users[0].pk is None:
        users = list(User.objects.filter(username__startswith="annotator-").order_by("pk"))
    Membership.objects.bulk_create([Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users])
    now = timezone.now()
    sessions = {
        u.pk: AnnotationSession.objects.create(
            project=project, annotator=u, started_at=now, expires_at=now + timedelta(hours=2), max_tasks=10**7
        )
        for u in users
    }
    criteria = project_current_criteria(project=project)
    items_per_batch = judgments // BATCHES // OVERLAP
    batches = []
    for index in range(BATCHES):
        t0 = time.perf_counter()
        batch = Batch.objects.create(project=project, name=f"wave-{index + 1}", criteria_version=criteria)
        _fill_batch(project, batch, items=items_per_batch, users=users, sessions=sessions, index=index)
        Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.CLOSED, closed_at=timezone.now())
        ImportRecord.objects.create(
            project=project,
            batch=batch,
            filename=f"wave-{index + 1}.jsonl.gz",
            status=ImportRecord.Status.IMPORTED,
            lines=items_per_batch,
            created=items_per_batch,
            strata=dict.fromkeys(STRATA, items_per_batch // 3),
        )
        AgreementSnapshot.objects.create(
            batch=batch,
            computed_at=timezone.now(),
            judgment_count=items_per_batch * OVERLAP,
            report=_report(items_per_batch * OVERLAP, items_per_batch, users),
        )
        batches.append(batch)
        print(
            f"  batch {index + 1}/{BATCHES}: {items_per_batch * OVERLAP:,} judgments, {time.perf_counter() - t0:.1f} s",
            flush=True,
        )

    directory = f"datasets/bench-{uuid.uuid4().hex[:8]}"
    folder = Path(settings.ARTIFACTS_DIR) / directory
    folder.mkdir(parents=True)
    manifest = json.dumps({"batches": [b.pk for b in batches], "counts": {"train": items_per_batch * 4}}).encode()
    (folder / "manifest.json").write_bytes(manifest)
    snapshot = DatasetSnapshot.objects.create(
        project=project,
        criteria_versions=[criteria.number],
        prompt_format="standard",
        train_count=items_per_batch * BATCHES * 9 // 10,
        validation_count=items_per_batch * BATCHES // 10,
        excluded_count=0,
        sha256={"manifest": hashlib.sha256(manifest).hexdigest()},
        directory=directory,
    )
    snapshot.batches.set(batches)
    reward_model = TrainingRun.objects.create(
        project=project,
        kind=Kind.REWARD_MODEL,
        status=Status.SUCCEEDED,
        config={"base_model": "tiny"},
        snapshot=snapshot,
        time_limit_seconds=60,
        output_dir="runs/bench-rm",
        evaluation={"accuracy": 0.71, "n_pairs": items_per_batch // 2},
        lineage={"schema": 1, "note": "bench"},
    )
    policy_run = TrainingRun.objects.create(
        project=project,
        kind=Kind.PPO,
        status=Status.SUCCEEDED,
        config={"base_model": "tiny"},
        snapshot=snapshot,
        reward_model=reward_model,
        time_limit_seconds=60,
        output_dir="runs/bench-ppo",
        lineage={"schema": 1, "note": "bench"},
    )
    world = make_world(project, prompts=300)
    world.policy_run = policy_run
    base = add_player(world, step=None)
    candidate = add_player(world, step=1000)
    weights = Path(settings.ARTIFACTS_DIR) / candidate.checkpoint.folder / "model.safetensors"
    weights.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(weights, "wb") as handle:
        block = os.urandom(1 << 20)
        for _ in range(64):
            handle.write(block)
            digest.update(block)
    Checkpoint.objects.filter(pk=candidate.checkpoint.pk).update(
        manifest={"model.safetensors": digest.hexdigest()}, final=True, size_bytes=64 << 20
    )
    eb = add_evaluation_batch(world, candidate=candidate, baseline=base, share=0.7, annotators=3)
    policy = GatePolicy.objects.create(project=project, version=1, min_win_rate_lower=0.5, created_by=lead)
    decision = GateDecision.objects.create(
        project=project,
        evaluation_batch=eb,
        checkpoint=candidate.checkpoint,
        policy=policy,
        verdict="approve",
        note="Bench approval.",
        checks=[{"criterion": "min_win_rate_lower", "value": 0.65, "threshold": 0.5, "passed": True}],
        reviewer=reviewer,
    )
    release = Release.objects.create(
        project=project, checkpoint=candidate.checkpoint, decision=decision, released_by=reviewer
    )
    return release.pk


def _peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM: per address space, so not the parent's peak as ru_maxrss would be
    after a fork and exec); ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(*, release_id: int, repeat: int, with_weights: bool) -> None:
    """The timed part, in a process of its own so that its peak RSS is the build's, not the fill's."""
    import django

    django.setup()
    from annotation.models import Judgment
    from evaluation.models import Release
    from evaluation.services.handoff import handoff_build

    release = Release.objects.get(pk=release_id)
    judgments = Judgment.objects.count()
    rss_before = _peak_rss_mib()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        path = handoff_build(release=release)
        times.append(time.perf_counter() - t0)
    rss_after = _peak_rss_mib()
    tracemalloc.start()
    handoff_build(release=release)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    backend = "PostgreSQL" if "postgres" in os.environ["DATABASE_URL"] else "SQLite"
    print()
    print(f"{backend}: {judgments:,} judgments, {BATCHES} batches in the lineage")
    print(f"handoff_build, best of {repeat}: {min(times):.2f} s  (all: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"package: {path.stat().st_size / 1024:.0f} KiB")
    print(f"peak Python allocations during one build (tracemalloc): {peak / 2**20:.1f} MiB")
    print(
        f"peak RSS (VmHWM) of the build process after django.setup: {rss_before:.0f} MiB, after the builds: "
        f"{rss_after:.0f} MiB"
    )
    if with_weights:
        t0 = time.perf_counter()
        heavy = handoff_build(release=release, with_weights=True)
        seconds = time.perf_counter() - t0
        rss = _peak_rss_mib()
        print(
            f"with weights (64 MiB streamed in): {seconds:.2f} s, {heavy.stat().st_size / 2**20:.0f} MiB, "
            f"peak RSS {rss:.0f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default="", help="PostgreSQL database to drop, create and fill.")
    parser.add_argument("--workdir", default="", help="Where the SQLite file and var/ go (a temporary folder).")
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--with-weights", action="store_true", help="Also time a build that copies the weights.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="Time again on the database --workdir holds.")
    parser.add_argument("--build-release", type=int, default=0, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()

    from _postgres import bench_environment, fresh_database, migrate

    if args.build_release:
        build(release_id=args.build_release, repeat=args.repeat, with_weights=args.with_weights)
        return
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-handoff-"))
    (workdir / "var").mkdir(parents=True, exist_ok=True)
    if args.reuse:
        url = args.postgres_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
        bench_environment(database_url=url, workdir=str(workdir))
        import django

        django.setup()
        from evaluation.models import Release

        release_id = Release.objects.order_by("-pk").values_list("pk", flat=True).first()
    elif args.postgres_url:
        bench_environment(database_url=args.postgres_url, workdir=str(workdir))
        fresh_database(args.postgres_url)
    else:
        db = workdir / "bench.sqlite3"
        db.unlink(missing_ok=True)
        bench_environment(database_url=f"sqlite:///{db}", workdir=str(workdir))
        migrate()
    os.environ.pop("REDIS_URL", None)
    if not args.reuse:
        import django

        django.setup()
        from annotation.models import Judgment

        t0 = time.perf_counter()
        release_id = fill(judgments=args.judgments, seed=args.seed)
        print(f"fill: {time.perf_counter() - t0:.1f} s, {Judgment.objects.count():,} judgments", flush=True)
    command = [sys.executable, __file__, "--build-release", str(release_id), "--repeat", str(args.repeat)]
    subprocess.run(command + (["--with-weights"] if args.with_weights else []), env=dict(os.environ), check=True)


if __name__ == "__main__":
    main()
