"""CPU per request of the API throttle (core/throttling.py) as the annotator loop's fast path runs it, against DRF's
own UserRateThrottle (a list of timestamps per user) at the same pace, in this process.

    .venv/bin/python bench/throttle.py                                        # Django's cache in memory
    REDIS_URL=redis://127.0.0.1:6379/15 .venv/bin/python bench/throttle.py    # Redis, as in production

One user at the loop's pace (~800 requests a minute), so DRF's list holds ~800 timestamps; each figure is the
best of 4 rounds of 4,000 requests, alternating, in CPU microseconds.
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("TANDEM_VAR_DIR", "/tmp/tandem-throttle-bench")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def main() -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.test import RequestFactory
    from rest_framework.throttling import UserRateThrottle

    from annotation.annotator_apis import NextAssignmentApi
    from core.throttling import fast_path_wait

    request = RequestFactory().get("/api/v1/sessions/1/next/")
    pace = 60 / 800
    user = type("User", (), {"pk": 1, "is_authenticated": True})()

    clock = [time.time()]

    def loop_pace() -> float:  # DRF's clock moves at the loop's pace, so its list keeps ~800 timestamps
        clock[0] += pace
        return clock[0]

    class DrfThrottle(UserRateThrottle):
        rate = "6000/min"
        timer = staticmethod(loop_pace)

    class Shim:
        META = request.META
        method = "GET"

    Shim.user = user

    def ours():
        fast_path_wait(request, user_id=1, view=NextAssignmentApi)

    def drf():
        DrfThrottle().allow_request(Shim, None)

    def off():
        settings.TANDEM_THROTTLE_ENABLED = False
        fast_path_wait(request, user_id=1, view=NextAssignmentApi)
        settings.TANDEM_THROTTLE_ENABLED = True

    def rounds(fn, n=4000) -> float:
        started = time.process_time()
        for _ in range(n):
            fn()
        return (time.process_time() - started) / n * 1e6

    for _ in range(800):  # fill DRF's list as the loop would
        drf()

    best = {"off": [], "ours": [], "drf": []}
    for _ in range(4):
        for name, fn in (("off", off), ("ours", ours), ("drf", drf)):
            best[name].append(rounds(fn))
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    print(f"cache: {backend}")
    print(f"throttling off (the setting read):         {min(best['off']):6.1f} us CPU per request")
    print(f"ours (fixed window, counts in batches):    {min(best['ours']):6.1f} us")
    print(f"DRF UserRateThrottle (~800 timestamps):    {min(best['drf']):6.1f} us")
    print(f"(DRF's list held {len(cache.get('throttle_user_1', []))} timestamps)")


if __name__ == "__main__":
    main()
