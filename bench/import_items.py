"""Import benchmark: items per second and peak memory of `items_import`, on SQLite and PostgreSQL.

Every measurement runs in a fresh child process against a freshly migrated database, and the child
reports its own `ru_maxrss`, so the peak memory covers the whole import (Python, Django, the service).

    .venv/bin/python bench/import_items.py                       # HH 1,500 + generated 200k, SQLite + PostgreSQL
    .venv/bin/python bench/import_items.py --sizes 50000,200000,800000 --db sqlite
    .venv/bin/python bench/import_items.py --profile --db sqlite --sizes 200000   # cProfile of one import

Generated files are cached in --workdir (default /tmp/tandem-bench); they are deterministic for a seed.
"""

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HH_FILE = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base-test-part1.jsonl.gz"
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/tandem_bench"

WORDS = str.split(
    "the a model answer question because however therefore which would could should response prompt user "
    "assistant data reward policy gradient python function return value error example explain step first "
    "second finally result table list item code test import batch judge prefer better worse clear helpful "
    "harmless honest safe unsafe refuse comply detail summary context memory token training evaluation "
    "café naïve über résumé 東京 数据 данные δεδομένα — “quoted” ½ ✓"
)


# --- Generating a standard-format file -------------------------------------------------------------


def _text_pool(rng: random.Random, size: int = 1 << 21) -> str:
    words, out, length = WORDS, [], 0
    while length < size:
        sentence = " ".join(rng.choices(words, k=rng.randint(6, 24))).capitalize() + rng.choice(".?!")
        if rng.random() < 0.08:
            sentence += "\n\n- " + " ".join(rng.choices(words, k=8)) + "\n- " + " ".join(rng.choices(words, k=6))
        out.append(sentence)
        length += len(sentence) + 1
    return " ".join(out)


def _length(rng: random.Random, median: int, cap: int) -> int:
    # Log-normal: mostly short, a long tail, like real prompts and completions.
    return max(8, min(cap, int(rng.lognormvariate(0, 0.8) * median)))


def generate(path: Path, items: int, seed: int = 7) -> Path:
    """A deterministic standard-format JSONL file: varied lengths, ~20 % chat prompts, the usual strata mix."""
    if path.exists():
        return path
    rng = random.Random(seed)
    pool = _text_pool(rng)

    def text(n: int) -> str:
        start = rng.randrange(0, len(pool) - n - 1)
        return pool[start : start + n]

    tmp = path.with_suffix(path.suffix + ".part")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(tmp, "wt", encoding="utf-8") as out:
        for i in range(items):
            line: dict = {}
            if rng.random() < 0.7:
                line["id"] = f"gen-{seed}-{i}"
            if rng.random() < 0.2:
                turns = rng.choice((1, 3, 5))
                line["messages"] = [
                    {
                        "role": "user" if t % 2 == 0 else "assistant",
                        "content": f"#{i}.{t} " + text(_length(rng, 150, 4000)),
                    }
                    for t in range(turns)
                ]
            else:
                line["prompt"] = f"#{i} " + text(_length(rng, 200, 6000))
            line["response_a"] = {"model": "sft-7b", "text": text(_length(rng, 400, 12000))}
            line["response_b"] = {"model": "sft-7b-t0.9", "text": text(_length(rng, 400, 12000))}
            roll = rng.random()
            line["stratum"] = "usage" if roll < 0.65 else "synthetic" if roll < 0.87 else "adversarial"
            if rng.random() < 0.5:
                line["category"] = rng.choice(("coding", "advice", "writing", "math", "red-team"))
            if rng.random() < 0.03:
                line["gold"] = rng.choice(("a", "b", "tie"))
            out.write(json.dumps(line, ensure_ascii=rng.random() < 0.5))
            out.write("\n")
    tmp.rename(path)
    return path


def generate_long(path: Path, items: int, seed: int = 11, chars: int = 99_000) -> Path:
    """Items at the size limit: prompt and both responses just under TANDEM_IMPORT_MAX_TEXT_CHARS (100,000)."""
    if path.exists():
        return path
    rng = random.Random(seed)
    pool = _text_pool(rng, size=4 * chars)
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "w", encoding="utf-8") as out:
        for i in range(items):
            start = rng.randrange(0, len(pool) - 3 * chars)
            texts = [f"{i}.{k} " + pool[start + k * chars : start + (k + 1) * chars - 10] for k in range(3)]
            line = {"id": f"long-{i}", "prompt": texts[0], "stratum": "usage"}
            line["response_a"] = {"model": "m1", "text": texts[1]}
            line["response_b"] = {"model": "m2", "text": texts[2]}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    tmp.rename(path)
    return path


# --- Databases ---------------------------------------------------------------------------------


def _env(database_url: str, workdir: Path, debug: bool = False) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="config.settings.local",
        TANDEM_VAR_DIR=str(workdir / "var"),
        DEBUG=str(debug),  # production runs without DEBUG, which also keeps a log of recent queries in memory
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def fresh_database(database_url: str, workdir: Path) -> None:
    """An empty database with the current schema: the SQLite file is deleted, PostgreSQL's is dropped and made."""
    if database_url.startswith("sqlite"):
        name = Path(database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(str(name) + suffix).unlink(missing_ok=True)
    else:
        import psycopg

        base, dbname = database_url.rsplit("/", 1)
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{dbname}"')
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=_env(database_url, workdir), check=True
    )


# --- One measurement, in a child process --------------------------------------------------------


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def child(file: str, keep_hh_gold: bool, profile: str | None) -> None:
    import django

    django.setup()
    from django.db import connection

    from annotation.services import items_import, project_create

    project = project_create(name="bench")
    connection.ensure_connection()
    baseline_kb = _rss_kb()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with open(file, "rb") as source:
        report = items_import(
            project=project, batch_name="bench", source=source, filename=file, keep_hh_gold=keep_hh_gold
        )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    print(
        json.dumps(
            {
                "created": report.created,
                "lines": report.lines,
                "seconds": seconds,
                "cpu_s": cpu,  # this process only: parsing, validation and the driver, not the database server
                "baseline_mb": baseline_kb / 1024,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # kB on Linux
            }
        )
    )


def _wait_for_quiet(max_load: float, patience: float = 900) -> None:
    """On a shared machine, wait (a while) for the 1-minute load average to drop: others' work skews wall time."""
    deadline = time.monotonic() + patience
    while max_load and os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(5)


def measure(
    file: Path,
    database_url: str,
    workdir: Path,
    *,
    keep_hh_gold: bool = False,
    profile: str = "",
    debug: bool = False,
    max_load: float = 0.0,
) -> dict:
    fresh_database(database_url, workdir)
    _wait_for_quiet(max_load)
    load = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "_child", str(file)]
    if keep_hh_gold:
        cmd.append("--keep-hh-gold")
    if profile:
        cmd += ["--profile", profile]
    out = subprocess.run(cmd, env=_env(database_url, workdir, debug), check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load"] = max(load, os.getloadavg()[0])
    result["items_per_s"] = result["created"] / result["seconds"]
    return result


# --- Driver ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument("--sizes", default="200000", help="generated file sizes, in items (comma-separated)")
    parser.add_argument("--long", type=int, default=0, help="also a file of this many items at the size limit")
    parser.add_argument("--no-hh", action="store_true", help="skip the 1,500-line HH-RLHF file")
    parser.add_argument("--gzip", action="store_true", help="generate .jsonl.gz files instead of plain JSONL")
    parser.add_argument("--workdir", default="/tmp/tandem-bench")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the best is kept")
    parser.add_argument("--profile", action="store_true", help="write a cProfile of each run to the workdir")
    parser.add_argument("--max-load", type=float, default=0.0, help="wait for the load average to fall below this")
    parser.add_argument("--debug", action="store_true", help="run the import with DEBUG=True (as `make run` does)")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[str, Path, bool]] = []
    if not args.no_hh:
        cases.append(("HH-RLHF 1,500 (gzip)", HH_FILE, True))
    for size in (int(s) for s in args.sizes.split(",") if s):
        suffix = ".jsonl.gz" if args.gzip else ".jsonl"
        path = generate(workdir / f"generated-{size}{suffix}", size)
        cases.append((f"generated {size:,}", path, False))

    if args.long:
        path = generate_long(workdir / f"long-{args.long}.jsonl", args.long)
        cases.append((f"{args.long:,} items at the size limit", path, False))

    databases = {"sqlite": f"sqlite:///{workdir / 'bench.sqlite3'}", "postgres": args.postgres_url}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), DEBUG={args.debug}")
    print(
        "| database | file | file size | items | seconds | items/s | client CPU s | RSS before import | peak RSS "
        "| load avg |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for db in args.db.split(","):
        for label, path, keep_gold in cases:
            runs = []
            for n in range(args.repeat):
                profile = str(workdir / f"profile-{db}-{path.name}-{n}.prof") if args.profile else ""
                runs.append(
                    measure(
                        path,
                        databases[db],
                        workdir,
                        keep_hh_gold=keep_gold,
                        profile=profile,
                        debug=args.debug,
                        max_load=args.max_load,
                    )
                )
            best = max(runs, key=lambda r: r["items_per_s"])
            peak = max(r["peak_mb"] for r in runs)
            print(
                f"| {db} | {label} | {path.stat().st_size / 1024**2:,.1f} MB | {best['created']:,} | "
                f"{best['seconds']:.2f} | {best['items_per_s']:,.0f} | {best['cpu_s']:.2f} | "
                f"{best['baseline_mb']:.0f} MB | {peak:.0f} MB | {best['load']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        sub = argparse.ArgumentParser()
        sub.add_argument("_child")
        sub.add_argument("file")
        sub.add_argument("--keep-hh-gold", action="store_true")
        sub.add_argument("--profile", default="")
        a = sub.parse_args()
        child(a.file, a.keep_hh_gold, a.profile or None)
    else:
        main()
