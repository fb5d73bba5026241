#!/usr/bin/env python
"""`make run`'s launcher: the Django web server and a real Celery worker side by side, stopped together.

Two workers, as in production: one on the `default` queue that also runs beat (the periodic agreement snapshots and
the lost-run sweep), and one on the `gpu` queue that trains on this machine's CPU, one run at a time, so a training
run never holds up snapshots. Ctrl-C (or SIGTERM) stops all of them; if any child dies, the others are stopped too
and the launcher exits with an error status.
"""

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 15
WORKER_ARGS = "-A config worker -Q default --concurrency 1 -n default@%h --loglevel info -B --schedule {schedule}"
# As docker-compose.yml's gpu-worker: one task at a time, nothing prefetched, a fresh process per run.
GPU_WORKER_ARGS = (
    "-A config worker -Q gpu --concurrency 1 --prefetch-multiplier 1 --max-tasks-per-child 1 -n gpu@%h --loglevel info"
)


def main() -> int:
    port = os.environ.get("PORT", "8000")
    host = "127.0.0.1"
    python = sys.executable
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    commands = {
        "worker": [python, "-m", "celery", *shlex.split(WORKER_ARGS.format(schedule=_beat_schedule_file()))],
        "gpu-worker": [python, "-m", "celery", *shlex.split(GPU_WORKER_ARGS)],
        "web": [python, "manage.py", "runserver", f"{host}:{port}"],
    }
    children: dict[str, subprocess.Popen] = {}
    stop_signal: list[int] = []

    def on_signal(signum, _frame) -> None:
        if not stop_signal:  # a second Ctrl-C changes nothing: the children are already shutting down
            stop_signal.append(signum)
            _forward(children, signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # Each child gets its own process group: the terminal's Ctrl-C reaches only this launcher, which forwards it to
    # each child's main process (Celery then stops its pool itself), and whatever a child leaves behind in its group
    # is killed at the end.
    for name, command in commands.items():
        children[name] = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)  # noqa: S603 (fixed argv)
    if stop_signal:  # Ctrl-C came while the children were starting
        _forward(children, stop_signal[0])

    if _wait_for_port(host, int(port), children["web"]) and not stop_signal:
        print(f"\n  Tandem is running at http://{host}:{port}/  (web, a Celery worker with beat, a gpu-queue worker)")
        print("  Press Ctrl-C to stop them all.\n", flush=True)

    status = 0
    while not stop_signal:
        dead = [(name, child.returncode) for name, child in children.items() if child.poll() is not None]
        if dead:
            name, status = dead[0]
            print(f"\n{name} exited with status {status}; stopping the rest.", file=sys.stderr, flush=True)
            status = 128 - status if status < 0 else status or 1  # killed by signal N: 128 + N, as a shell says
            _forward(children, signal.SIGTERM)
            break
        time.sleep(0.3)
    _reap(children)
    return status


def _beat_schedule_file() -> str:
    # Beat's record of when each periodic task last ran, beside the SQLite file and the broker folders.
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.conf import settings

    return shlex.quote(str(Path(settings.VAR_DIR) / "celerybeat-schedule"))


def _forward(children: dict[str, subprocess.Popen], signum: int) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signum)


def _kill_group(child: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def _reap(children: dict[str, subprocess.Popen]) -> None:
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        _kill_group(child)
        child.wait()


def _wait_for_port(host: str, port: int, web: subprocess.Popen, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and web.poll() is None:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


if __name__ == "__main__":
    sys.exit(main())
