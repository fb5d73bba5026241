"""Annotator-loop benchmark: N virtual annotators (asyncio + httpx) against gunicorn + PostgreSQL on this machine.

Each annotator starts a session and loops `next` → judgment with its own DRF token, as the page does. Every load
gets a fresh project, batch and annotators; after it, the integrity checks of tests/annotation/test_concurrency.py
run against the database. The client shares the machine's cores with gunicorn and PostgreSQL: the report gives
the CPU seconds each of them used, so the figures can be read for what they are.

    .venv/bin/python bench/annotator_loop.py                          # 1, 10 and 50 annotators, flat out
    .venv/bin/python bench/annotator_loop.py --annotators 50 --rate 300   # 50 annotators offering 300 judgments/s
    .venv/bin/python bench/annotator_loop.py --annotators 50 --worker-class sync --workers 4 --threads 1 \
        --profile /tmp/loop.prof                                          # cProfile each worker (CPU time)
    .venv/bin/python bench/annotator_loop.py --annotators 50 --throttle off,on,off,on   # API throttling's cost

The database (default postgres://postgres@127.0.0.1:5432/tandem_loadbench) is dropped and made afresh.
"""

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/tandem_loadbench"
WORKDIR = Path("/tmp/tandem-loadbench")


def _env(args) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        # Production-like but over plain HTTP: production.py would redirect to HTTPS and demand secure cookies.
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DEBUG="False",
        SECRET_KEY=env.get("SECRET_KEY") or secrets.token_urlsafe(50),
        TANDEM_VAR_DIR=str(WORKDIR / "var"),
        LOG_LEVEL="ERROR",  # 409/410 are expected answers; logging each one is not what is measured
        PYTHONPATH=str(ROOT),
    )
    # --throttle: the server of the current pass runs with API throttling on or off (core/throttling.py).
    if getattr(args, "throttle_now", None) is not None:
        env["TANDEM_THROTTLE_ENABLED"] = "True" if args.throttle_now == "on" else "False"
    return env


def fresh_database(args) -> None:
    import psycopg

    base, dbname = args.database_url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=_env(args), check=True)


# --- Seeding, through the services, in this process -------------------------------------------------


def seed(*, name: str, annotators: int, items: int, gold_share: float, args) -> tuple[int, list[str]]:
    """A project with one open batch and `annotators` members with tokens; (project id, tokens)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from annotation.models import Item
    from annotation.services import batch_get_or_create, member_add, project_create

    project = project_create(
        name=name,
        overlap=args.overlap,
        max_overlap=args.overlap + 2,
        gold_rate=args.gold_rate,
        session_minutes=24 * 60,
        session_max_tasks=1_000_000,
        lease_minutes=10,
    )
    batch, _created = batch_get_or_create(project=project, name="load")
    rng = random.Random(name)
    words = ["the", "a", "model", "answer", "because", "which", "prompt", "response", "clear", "helpful", "honest"]

    def text(n: int) -> str:
        return " ".join(rng.choices(words, k=n)).capitalize() + "."

    n_gold = int(items * gold_share)
    rows = [
        Item(
            project=project,
            batch=batch,
            external_id=f"{name}-{n}",
            dedupe_key=f"id:{name}-{n}",
            prompt=text(rng.randint(8, 40)) + "?",
            response_a_text=text(rng.randint(40, 200)),
            response_a_model="bench-model-a",
            response_b_text=text(rng.randint(40, 200)),
            response_b_model="bench-model-b",
            gold=rng.choice("ab") if n < n_gold else "",
        )
        for n in range(items)
    ]
    Item.objects.bulk_create(rows, batch_size=2000)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"{name}-ann{n}") for n in range(annotators)]
    )
    tokens = []
    for user in users:
        member_add(project=project, username=user.username, role="annotator")
        tokens.append(Token.objects.create(user=user).key)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    connection.close()
    return project.pk, tokens


# --- gunicorn -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(args, port: int) -> subprocess.Popen:
    cmd = [
        str(Path(sys.executable).parent / "gunicorn"),
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--backlog",
        "2048",
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
    ]
    env = _env(args)
    if args.profile:
        cmd[1:2] = ["bench.annotator_loop:profiled_application()"]
        env["TANDEM_PROFILE"] = args.profile
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/projects/", timeout=2).status_code in (401, 403):
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise SystemExit("gunicorn exited while starting")
        time.sleep(0.2)
    stop(server)
    raise SystemExit("gunicorn did not answer within 60 s")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def cpu_seconds(root_pid: int | None = None, name: str | None = None) -> float:
    """utime + stime of a process tree (root_pid) or of every process with this command name, from /proc.

    By name, the CPU of processes that have exited counts too, through their parents' cutime + cstime: PostgreSQL
    backends come and go (gunicorn's connections are closed after CONN_MAX_AGE), and a live-only sum went
    backwards when one exited during a load.
    """
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            own, children = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
            stats[int(entry.name)] = (comm, int(fields[1]), own, children)
    if name is not None:
        named = {pid for pid, (comm, *_rest) in stats.items() if comm == name}
        total = sum(stats[pid][2] for pid in named)
        # The top of each tree of them (the postmaster) holds the CPU of its exited children.
        total += sum(stats[pid][3] for pid in named if stats[pid][1] not in named)
        return total / tick
    tree, grew = {root_pid}, True
    while grew:
        grew = False
        for pid, (_comm, ppid, _own, _children) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    total = sum(stats[pid][2] for pid in tree if pid in stats)
    return total / tick


def profiled_application():
    """The WSGI app with cProfile on for the worker's life; each worker dumps to $TANDEM_PROFILE.<pid> at exit."""
    import atexit
    import cProfile

    from config.wsgi import application

    profiler = cProfile.Profile(time.process_time)  # CPU time: waits on the database and the socket don't count
    profiler.enable()
    atexit.register(lambda: (profiler.disable(), profiler.dump_stats(f"{os.environ['TANDEM_PROFILE']}.{os.getpid()}")))
    return application


# --- The load -------------------------------------------------------------------------------------


@dataclass
class Samples:
    next_ms: list = field(default_factory=list)
    judgment_ms: list = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    judged: int = 0  # 201s inside the measured window
    answered: list = field(default_factory=list)  # (assignment id, judgment id, status) for every 2xx, whole run
    unexpected: list = field(default_factory=list)
    exhausted: int = 0


async def annotator(port: int, token: str, project_id: int, clock: dict, samples: Samples, seed: int, pace: float, tls):
    import httpx

    # A client (one keep-alive connection) per annotator, as each person's browser has: one shared pool of 50
    # connections costs httpx ~4 ms of CPU per request, against ~1.5 ms this way, on the cores the server needs.
    # `tls` is one SSL context for all of them: httpx loads the CA bundle for each client otherwise (20 ms of CPU
    # apiece, a second for 50 annotators, counted against the client), though the URL is plain HTTP.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30, verify=tls) as client:
        await _loop(client, token, project_id, clock, samples, seed, pace)


async def _loop(client, token: str, project_id: int, clock: dict, samples: Samples, seed: int, pace: float):
    import httpx

    rng = random.Random(seed)
    headers = {"Authorization": f"Token {token}"}
    response = await client.post(f"/api/v1/projects/{project_id}/sessions/", headers=headers)
    session_id = response.json()["id"]
    # Paced runs start each annotator at a random phase of its interval, so requests do not arrive in waves.
    due = time.perf_counter() + (rng.random() * pace if pace else 0)
    while time.perf_counter() < clock["end"]:
        if pace:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            due = max(due + pace, time.perf_counter() - pace)  # behind schedule: no burst to catch up
        started = time.perf_counter()
        try:
            response = await client.get(f"/api/v1/sessions/{session_id}/next/", headers=headers)
        except httpx.TransportError as exc:
            samples.unexpected.append(f"next: {exc!r}")
            continue
        measured = started >= clock["measure_from"] and time.perf_counter() <= clock["end"]
        if measured:
            samples.next_ms.append((time.perf_counter() - started) * 1000)
        samples.statuses[f"next {response.status_code}"] += 1
        if response.status_code == 204:
            samples.exhausted += 1
            return
        if response.status_code != 200:
            samples.unexpected.append(f"next {response.status_code}: {response.text[:200]}")
            await asyncio.sleep(0.1)
            continue
        assignment_id = response.json()["assignment_id"]
        body = {"choice": rng.choice(("left", "right", "left", "right", "tie"))}
        started = time.perf_counter()
        try:
            response = await client.post(f"/api/v1/assignments/{assignment_id}/judgment/", json=body, headers=headers)
        except httpx.TransportError as exc:
            samples.unexpected.append(f"judgment: {exc!r}")
            continue
        measured = started >= clock["measure_from"] and time.perf_counter() <= clock["end"]
        if measured:
            samples.judgment_ms.append((time.perf_counter() - started) * 1000)
        samples.statuses[f"judgment {response.status_code}"] += 1
        if response.status_code in (200, 201):
            samples.answered.append((assignment_id, response.json()["id"], response.status_code))
            samples.judged += measured and response.status_code == 201
        elif response.status_code != 410:  # a lease that ran out is an expected answer, not an error
            samples.unexpected.append(f"judgment {response.status_code}: {response.text[:200]}")


async def run_load(*, port: int, project_id: int, tokens: list[str], args) -> tuple[Samples, float]:

    samples = Samples()
    pace = len(tokens) / args.rate if args.rate else 0.0
    now = time.perf_counter()
    clock = {"measure_from": now + args.warmup, "end": now + args.warmup + args.duration}
    tls = ssl.create_default_context()
    await asyncio.gather(*(annotator(port, t, project_id, clock, samples, n, pace, tls) for n, t in enumerate(tokens)))
    window = min(args.duration, time.perf_counter() - clock["measure_from"])
    return samples, window


def _run(coroutine):
    """asyncio.run, on uvloop when it is installed (requirements-dev): the client shares the server's two cores, and
    uvloop's event loop spends about a tenth less CPU per request than asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# --- Integrity, as in tests/annotation/test_concurrency.py -----------------------------------------


def integrity_problems(project_id: int, answered: list) -> list[str]:
    from django.db import connection
    from django.db.models import Count, F

    from annotation.models import Item, Judgment, Project

    project = Project.objects.get(pk=project_id)
    problems = []
    items = Item.objects.filter(project=project).annotate(real=Count("judgments"))
    wrong_count = items.exclude(judgment_count=F("real"))
    problems += [f"item {i.pk}: judgment_count {i.judgment_count}, {i.real} judgments" for i in wrong_count[:20]]
    over = items.filter(gold="", real__gt=project.overlap + F("extra_judgments"))
    problems += [f"item {i.pk}: {i.real} judgments > {project.overlap} + {i.extra_judgments}" for i in over[:20]]
    beyond = items.filter(extra_judgments__gt=max(0, project.max_overlap - project.overlap))
    problems += [f"item {i.pk}: extra judgments past max_overlap" for i in beyond[:20]]
    twice = (
        Judgment.objects.filter(item__project=project)
        .values("item", "annotator")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    problems += [f"item {p['item']} judged twice by annotator {p['annotator']}" for p in twice[:20]]
    stored = dict(Judgment.objects.filter(item__project=project).values_list("pk", "assignment_id"))
    told = {}
    for assignment_id, judgment_id, _status in answered:
        if told.setdefault(judgment_id, assignment_id) != assignment_id:
            problems.append(f"judgment {judgment_id} answered for two assignments")
        if str(stored.get(judgment_id)) != assignment_id:
            problems.append(f"judgment {judgment_id} answered 2xx but not stored for its assignment")
    created = Counter(j for _a, j, status in answered if status == 201)
    problems += [f"judgment {j} answered 201 {n} times" for j, n in created.items() if n > 1]
    problems += [f"judgment {pk} stored but never answered 2xx" for pk in stored if pk not in told]
    connection.close()
    return problems


# --- Report ---------------------------------------------------------------------------------------


def pct(values: list, q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def one_load(n: int, port: int, server: subprocess.Popen, args) -> dict:
    name = f"load-{n}-{int(time.time())}"
    items = args.items or max(3000, int(n * 400))
    project_id, tokens = seed(name=name, annotators=n, items=items, gold_share=0.05, args=args)
    deadline = time.monotonic() + 900
    while args.max_load and os.getloadavg()[0] > args.max_load and time.monotonic() < deadline:
        time.sleep(5)
    load_before = os.getloadavg()[0]
    cpu_before = (
        cpu_seconds(root_pid=server.pid),
        cpu_seconds(name="postgres"),
        resource.getrusage(resource.RUSAGE_SELF),
    )
    wall = time.perf_counter()
    samples, window = _run(run_load(port=port, project_id=project_id, tokens=tokens, args=args))
    wall = time.perf_counter() - wall
    usage = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = usage.ru_utime + usage.ru_stime - cpu_before[2].ru_utime - cpu_before[2].ru_stime
    problems = integrity_problems(project_id, samples.answered) + samples.unexpected[:20]
    stored = sum(1 for _a, _j, status in samples.answered if status == 201)
    gunicorn_cpu = cpu_seconds(root_pid=server.pid) - cpu_before[0]
    postgres_cpu = cpu_seconds(name="postgres") - cpu_before[1]
    result = {
        "annotators": n,
        "rate_offered": args.rate or None,
        "judgments_per_s": samples.judged / window if window > 0 else 0.0,
        "next_p50": pct(samples.next_ms, 50),
        "next_p95": pct(samples.next_ms, 95),
        "next_p99": pct(samples.next_ms, 99),
        "judgment_p50": pct(samples.judgment_ms, 50),
        "judgment_p95": pct(samples.judgment_ms, 95),
        "judgment_p99": pct(samples.judgment_ms, 99),
        "window_s": round(window, 1),
        "statuses": dict(samples.statuses),
        "exhausted": samples.exhausted,
        # CPU seconds over the whole load (warm-up included), per stored judgment of the whole load.
        "cpu_s": {
            "gunicorn": round(gunicorn_cpu, 1),
            "postgres_all": round(postgres_cpu, 1),
            "client": round(client_cpu, 1),
            "wall": round(wall, 1),
        },
        # Robust to others' load on a shared machine, unlike the rates: what the server spent per judgment stored.
        "gunicorn_cpu_ms_per_judgment": round(1000 * gunicorn_cpu / stored, 2) if stored else None,
        "postgres_cpu_ms_per_judgment": round(1000 * postgres_cpu / stored, 2) if stored else None,
        "client_cpu_ms_per_judgment": round(1000 * client_cpu / stored, 2) if stored else None,
        "load_average_before": load_before,
        "throttle": args.throttle_now,
        "integrity": problems or "ok",
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", default="1,10,50", help="comma-separated loads")
    parser.add_argument("--duration", type=float, default=30, help="measured seconds per load")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load before measuring")
    parser.add_argument("--rate", type=float, default=0, help="offered judgments/s over all annotators (0: flat out)")
    parser.add_argument("--items", type=int, default=0, help="items per load (default 400 per annotator)")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--gold-rate", type=float, default=0.07)
    # One worker with 16 threads: on these two cores, shared with PostgreSQL and the client, a single process spent
    # the least CPU per judgment (2.4 ms, against 2.7-2.9 for 2-4 workers); see bench/README.md.
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument(
        "--profile",
        default="",
        help="cProfile each gunicorn worker into FILE.<pid>; with --worker-class sync, as cProfile sees only the "
        "thread it started in (under gthread it sees the accept loop, not the requests)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON line per load instead of the table")
    parser.add_argument(
        "--throttle",
        default="on",
        help="API throttling on the server: on (as in production), off, or passes such as off,on,off,on (a fresh "
        "gunicorn per pass, each running every load); the end line compares the passes",
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=0,
        help="before each load, wait (up to 15 min) for the "
        "1-minute load average to drop below this: others' work on a shared machine skews the rates",
    )
    args = parser.parse_args()

    WORKDIR.mkdir(parents=True, exist_ok=True)
    fresh_database(args)
    os.environ.update(_env(args))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()

    results = []
    for state in args.throttle.split(","):
        args.throttle_now = state
        port = _free_port()
        server = start_gunicorn(args, port)
        try:
            for n in (int(x) for x in args.annotators.split(",")):
                result = one_load(n, port, server, args)
                results.append(result)
                print(json.dumps(result) if args.json else _row(result), flush=True)
        finally:
            stop(server)
    if not args.json:
        print()
        print(f"gunicorn {args.worker_class} x{args.workers} workers x{args.threads} threads; {os.cpu_count()} CPUs")
        _compare_throttle(results)
    if any(r["integrity"] != "ok" for r in results):
        sys.exit(1)


def _compare_throttle(results: list[dict]) -> None:
    """Per load, judgments/s and gunicorn CPU per judgment with throttling on against off (means over the passes)."""
    for n in sorted({r["annotators"] for r in results}):
        by = {s: [r for r in results if r["annotators"] == n and r["throttle"] == s] for s in ("on", "off")}
        if not by["on"] or not by["off"]:
            continue
        rate = {s: sum(r["judgments_per_s"] for r in rs) / len(rs) for s, rs in by.items()}
        cpu = {s: sum(r["gunicorn_cpu_ms_per_judgment"] or 0 for r in rs) / len(rs) for s, rs in by.items()}
        print(
            f"{n} annotators, throttling on/off: {rate['on']:.1f} / {rate['off']:.1f} judgments/s "
            f"(ratio {rate['on'] / rate['off']:.3f}); gunicorn CPU {cpu['on']:.2f} / {cpu['off']:.2f} ms per judgment"
        )


def _row(r: dict) -> str:
    cpu = r["cpu_s"]
    return (
        f"[throttle {r['throttle']}] {r['annotators']:>3} annotators"
        + (f" @ {r['rate_offered']:.0f}/s offered" if r["rate_offered"] else "")
        + f": {r['judgments_per_s']:7.1f} judgments/s | next p50/p95/p99 "
        f"{r['next_p50']:.1f}/{r['next_p95']:.1f}/{r['next_p99']:.1f} ms | judgment "
        f"{r['judgment_p50']:.1f}/{r['judgment_p95']:.1f}/{r['judgment_p99']:.1f} ms | "
        f"cpu s gunicorn {cpu['gunicorn']} postgres {cpu['postgres_all']} client {cpu['client']} "
        f"in {cpu['wall']} s (per judgment: gunicorn {r['gunicorn_cpu_ms_per_judgment']} ms, postgres "
        f"{r['postgres_cpu_ms_per_judgment']} ms, client {r['client_cpu_ms_per_judgment']} ms) | load {r['load_average_before']:.1f} | integrity {r['integrity']}"
        + (f" | exhausted {r['exhausted']}" if r["exhausted"] else "")
    )


if __name__ == "__main__":
    main()
