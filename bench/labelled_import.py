"""Labelled-source import benchmark: pairs per second and peak memory of `labelled_import` (the service behind
`manage.py import_labelled`, the API and the admin), against the item import (`items_import`) on the same lines.

The lines are HH-RLHF pairs, the format a team most often brings in: the shared file's 1,500 real dialogues,
repeated with the line number written into the first Human turn so that every line is a new pair (multi-turn,
unicode, ~1.4 KB a line). The item import accepts the same lines (it draws which side is A and keeps no preference),
so the ratio compares the two services on identical input: same reader, same writer, same database work.

Every measurement runs in a fresh child process against a freshly migrated database (bench/import_items.py's
helpers) and reports the child's own `ru_maxrss`: peak RSS is the whole process's high-water mark.

    .venv/bin/python bench/labelled_import.py                                   # 10k, 100k, 1M; SQLite + PostgreSQL
    .venv/bin/python bench/labelled_import.py --sizes 100000 --db sqlite --no-baseline
"""

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_items import DEFAULT_PG, HH_FILE, _env, _rss_kb, _wait_for_quiet, fresh_database


def generate_hh(path: Path, pairs: int) -> Path:
    """`pairs` HH-RLHF lines: the shared file's dialogues in turn, each made new by its number in the first turn."""
    if path.exists():
        return path
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as f:
        base = [json.loads(line) for line in f]
    marker = "\n\nHuman: "
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "w", encoding="utf-8") as out:
        for i in range(pairs):
            line = base[i % len(base)]
            tag = f"{marker}#{i} "
            out.write(
                json.dumps(
                    {
                        "chosen": line["chosen"].replace(marker, tag, 1),
                        "rejected": line["rejected"].replace(marker, tag, 1),
                    },
                    ensure_ascii=False,
                )
            )
            out.write("\n")
    tmp.rename(path)
    return path


def child(file: str, service: str) -> None:
    import django

    django.setup()
    from django.db import connection

    from annotation.services import items_import, project_create
    from annotation.services.labelled import labelled_import

    project = project_create(name="bench")
    connection.ensure_connection()
    baseline_kb = _rss_kb()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with open(file, "rb") as source:
        if service == "labelled":
            report = labelled_import(project=project, source_name="bench", file=source, filename=file, format="hh_rlhf")
        else:
            report = items_import(project=project, batch_name="bench", source=source, filename=file)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "created": report.created,
                "lines": report.lines,
                "seconds": seconds,
                "cpu_s": after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime,
                "baseline_mb": baseline_kb / 1024,
                "peak_mb": after.ru_maxrss / 1024,  # kB on Linux
            }
        )
    )


def measure(file: Path, service: str, database_url: str, workdir: Path, *, max_load: float) -> dict:
    fresh_database(database_url, workdir)
    _wait_for_quiet(max_load)
    load = os.getloadavg()[0]
    env = _env(database_url, workdir)
    # The 1M file takes longer than the default time budget of one import on a busy shared machine.
    env["TANDEM_IMPORT_TIME_BUDGET_SECONDS"] = "1800"
    out = subprocess.run(
        [sys.executable, __file__, "_child", str(file), service], env=env, check=True, capture_output=True, text=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load"] = max(load, os.getloadavg()[0])
    result["per_s"] = result["created"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="generated file sizes, in pairs")
    parser.add_argument("--no-baseline", action="store_true", help="skip the item import on the same lines")
    parser.add_argument("--workdir", default="/tmp/tandem-bench")
    parser.add_argument("--max-load", type=float, default=0.0, help="wait for the load average to fall below this")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    files = [generate_hh(workdir / f"hh-pairs-{size}.jsonl", size) for size in (int(s) for s in args.sizes.split(","))]
    databases = {"sqlite": f"sqlite:///{workdir / 'bench.sqlite3'}", "postgres": args.postgres_url}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)")
    print(
        "| database | file | file size | pairs | seconds | pairs/s | client CPU s | RSS before | peak RSS | item import items/s "
        "| item import peak RSS | ratio | load avg |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for db in args.db.split(","):
        for path in files:
            labelled = measure(path, "labelled", databases[db], workdir, max_load=args.max_load)
            items = None if args.no_baseline else measure(path, "items", databases[db], workdir, max_load=args.max_load)
            baseline = (
                f"{items['per_s']:,.0f} | {items['peak_mb']:.0f} MB | {labelled['per_s'] / items['per_s']:.2f}"
                if items
                else "– | – | –"
            )
            print(
                f"| {db} | {path.name} | {path.stat().st_size / 1024**2:,.1f} MB | {labelled['created']:,} | "
                f"{labelled['seconds']:.2f} | {labelled['per_s']:,.0f} | {labelled['cpu_s']:.2f} | "
                f"{labelled['baseline_mb']:.0f} MB | {labelled['peak_mb']:.0f} MB | {baseline} | {max(labelled['load'], (items or labelled)['load']):.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
