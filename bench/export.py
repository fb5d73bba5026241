"""Export benchmark: pairs per second and peak memory of `dataset_create` (the service behind the API, the admin
action and `manage.py export_pairs`), on SQLite and PostgreSQL.

Each size gets a freshly migrated database filled in SQL (items with ~200-character prompts shared by three items
each and ~400-character responses, three judgments per item, 1 % gold, 2 % split), then the export runs in a new
child process that reports its own `ru_maxrss`: the high-water mark of the whole process, so flat memory shows as
the same peak whatever the size.

    .venv/bin/python bench/export.py                                   # 200,000 items, SQLite + PostgreSQL
    .venv/bin/python bench/export.py --sizes 50000,200000,1000000 --db sqlite
    .venv/bin/python bench/export.py --sizes 200000 --db sqlite --profile   # cProfile of the export
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from import_items import _env, _rss_kb, _wait_for_quiet, fresh_database  # noqa: E402

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/tandem_bench_export"
LOREM = (
    "Preference data is only as good as the agreement behind it. Annotators compare two answers to the same "
    "prompt, blinded and in random order, and a lead watches how often they agree. Café, naïve, über, 東京, данные. "
) * 12


# --- Filling a database in SQL (not timed) -----------------------------------------------------------------------


def populate(items: int, chat_share: float) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation.models import AnnotationSession, Batch
    from annotation.services import project_create
    from annotation.services.projects import project_current_criteria

    project = project_create(name="bench")
    batch = Batch.objects.create(
        project=project, name="bench", criteria_version=project_current_criteria(project=project)
    )
    now = timezone.now()
    users = [get_user_model().objects.create_user(username=f"bench-{k}") for k in range(3)]
    sessions = [
        AnnotationSession.objects.create(
            project=project, annotator=u, started_at=now, expires_at=now, max_tasks=10**9, tasks_done=0
        )
        for u in users
    ]
    pg = connection.vendor == "postgresql"
    prompts = max(1, items // 3)
    chat_every = round(1 / chat_share) if chat_share else 0
    messages = (
        f"CASE WHEN n %% {chat_every} = 0 THEN "
        + (
            f"json_build_array(json_build_object('role', 'user', 'content', 'Prompt ' || (n %% {prompts}) || ': ' || "
            f"substr(%(lorem)s, 1 + (n %% {prompts}) * 37 %% 500, 200)))::jsonb"
            if pg
            else f"json_array(json_object('role', 'user', 'content', 'Prompt ' || (n %% {prompts}) || ': ' || "
            f"substr(%(lorem)s, 1 + (n %% {prompts}) * 37 %% 500, 200)))"
        )
        + " ELSE NULL END"
        if chat_every
        else "NULL"
    )
    numbers = (
        f"generate_series(0, {items - 1}) AS n"
        if pg
        else f"(WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < {items - 1}) SELECT n FROM seq)"  # noqa: S608
    )
    # The SQL below is built from integers (ids, sizes) only; texts go in as parameters.
    item_sql = f"""
        INSERT INTO annotation_item (project_id, batch_id, external_id, dedupe_key, prompt, messages,
            response_a_text, response_a_model, response_b_text, response_b_model, stratum, category, gold,
            labelled_choice, judgment_count, extra_judgments, created_at)
        SELECT {project.pk}, {batch.pk}, 'x-' || n, 'id:x-' || n,
            'Prompt ' || (n %% {prompts}) || ': ' || substr(%(lorem)s, 1 + (n %% {prompts}) * 37 %% 500, 200),
            {messages},
            'A' || n || ' ' || substr(%(lorem)s, 1 + n * 13 %% 800, 400), 'alpha',
            'B' || n || ' ' || substr(%(lorem)s, 1 + n * 29 %% 800, 420), 'beta',
            'usage', '', CASE WHEN n %% 100 = 3 THEN 'a' ELSE '' END, '', 3, 0, %(now)s
        FROM {numbers}
    """  # noqa: S608
    uuid_sql = "gen_random_uuid()" if pg else "lower(hex(randomblob(16)))"
    annotators = " UNION ALL ".join(
        f"SELECT {k} AS k, {u.pk} AS uid, {s.pk} AS sid" for k, (u, s) in enumerate(zip(users, sessions, strict=True))
    )
    assignment_sql = f"""
        INSERT INTO annotation_assignment (id, session_id, item_id, annotator_id, left_is_a, leased_at,
            lease_expires_at, judged_at)
        SELECT {uuid_sql}, u.sid, i.id, u.uid, {"TRUE" if pg else "1"}, %(now)s, %(now)s, %(now)s
        FROM annotation_item i CROSS JOIN ({annotators}) u WHERE i.batch_id = {batch.pk}
    """  # noqa: S608
    # Votes: mostly unanimous for A or B; every tenth item has one tie vote; one in fifty splits a / b / tie.
    judgment_sql = f"""
        INSERT INTO annotation_judgment (assignment_id, item_id, batch_id, annotator_id, choice, shown_left,
            dimensions, justification, seconds, too_fast, is_gold, gold_correct, created_at)
        SELECT a.id, a.item_id, {batch.pk}, a.annotator_id,
            CASE WHEN a.item_id %% 50 = 7 THEN (CASE u.k WHEN 0 THEN 'a' WHEN 1 THEN 'b' ELSE 'tie' END)
                 WHEN a.item_id %% 10 = 9 AND u.k = 2 THEN 'tie'
                 WHEN a.item_id %% 2 = 0 THEN 'a' ELSE 'b' END,
            'a', '{{}}', '', 12.5, {"FALSE" if pg else "0"}, {"FALSE" if pg else "0"}, NULL, %(now)s
        FROM annotation_assignment a JOIN ({annotators}) u ON u.uid = a.annotator_id
        WHERE a.session_id IN ({", ".join(str(s.pk) for s in sessions)})
    """  # noqa: S608
    params = {"lorem": LOREM, "now": now}
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in (item_sql, assignment_sql, judgment_sql):
            cursor.execute(sql, params)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.CLOSED, closed_at=now)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# --- One export, in a child process ------------------------------------------------------------------------------


def child(profile: str | None, weighting: str) -> None:
    import django

    django.setup()
    from django.db import connection

    from annotation.models import Project
    from rewards.selectors import dataset_files
    from rewards.services.datasets import dataset_create

    project = Project.objects.get(name="bench")
    connection.ensure_connection()
    baseline_kb = _rss_kb()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    snapshot = dataset_create(project=project, weighting=weighting)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    files = dataset_files(snapshot=snapshot)
    print(
        json.dumps(
            {
                "pairs": snapshot.train_count + snapshot.validation_count,
                "excluded": snapshot.excluded_count,
                "validation": snapshot.validation_count,
                "mb_written": sum(p.stat().st_size for p in files.values()) / 1024**2,
                "seconds": seconds,
                "cpu_s": after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime,
                "baseline_mb": baseline_kb / 1024,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def measure(items: int, database_url: str, workdir: Path, args) -> dict:
    fresh_database(database_url, workdir)
    env = _env(database_url, workdir)
    env["ARTIFACTS_DIR"] = str(workdir / "artifacts")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "_populate", str(items), "--chat-share", str(args.chat_share)], env=env, check=True
    )
    fill = time.perf_counter() - started
    _wait_for_quiet(args.max_load)
    load = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "_child", "--weighting", args.weighting]
    if args.profile:
        cmd += ["--profile", str(workdir / f"export-{items}-{database_url.split(':')[0]}.prof")]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(load=max(load, os.getloadavg()[0]), fill_s=fill, pairs_per_s=result["pairs"] / result["seconds"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument("--sizes", default="200000", help="items per run (comma-separated)")
    parser.add_argument("--weighting", default="vote", choices=["vote", "dawid_skene"])
    parser.add_argument("--chat-share", type=float, default=0.0, help="share of items with messages prompts")
    parser.add_argument("--workdir", default="/tmp/tandem-bench-export")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--max-load", type=float, default=0.0, help="wait for the load average to fall below this")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    databases = {"sqlite": f"sqlite:///{workdir / 'bench.sqlite3'}", "postgres": args.postgres_url}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), weighting={args.weighting}")
    print(
        "| database | items | pairs | excluded | MB written | seconds | pairs/s | client CPU s | RSS before | "
        "peak RSS | load avg |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for db in args.db.split(","):
        for items in (int(s) for s in args.sizes.split(",") if s):
            r = measure(items, databases[db], workdir, args)
            print(
                f"| {db} | {items:,} | {r['pairs']:,} | {r['excluded']:,} | {r['mb_written']:,.0f} | "
                f"{r['seconds']:.1f} | {r['pairs_per_s']:,.0f} | {r['cpu_s']:.1f} | {r['baseline_mb']:.0f} MB | "
                f"{r['peak_mb']:.0f} MB | {r['load']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT.parent))
    if len(sys.argv) > 1 and sys.argv[1] == "_populate":
        sub = argparse.ArgumentParser()
        sub.add_argument("_populate")
        sub.add_argument("items", type=int)
        sub.add_argument("--chat-share", type=float, default=0.0)
        a = sub.parse_args()
        populate(a.items, a.chat_share)
    elif len(sys.argv) > 1 and sys.argv[1] == "_child":
        sub = argparse.ArgumentParser()
        sub.add_argument("_child")
        sub.add_argument("--profile", default="")
        sub.add_argument("--weighting", default="vote")
        a = sub.parse_args()
        child(a.profile or None, a.weighting)
    else:
        main()
