"""API throttling: DRF's throttles with their rates read from Tandem's settings, and the client address they and
django-axes share.

Per signed-in user (TANDEM_THROTTLE_USER), per address for anonymous calls (TANDEM_THROTTLE_ANON), and per user
and scope for a few heavy endpoints (TANDEM_THROTTLE_HEAVY: views that set `throttle_scope`). A refused call
answers 429 {"code": "throttled", "detail"} with Retry-After (DRF's Throttled, through the project's exception
handler). The counters live in Django's cache: Redis when REDIS_URL is set, else this process's memory.

The annotator loop's fast path (annotation.annotator_fast_path) runs the same classes on the same cache keys
through `fast_path_wait`.
"""

import logging
import threading
from types import SimpleNamespace

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import RedisError
from rest_framework import throttling
from rest_framework.permissions import SAFE_METHODS

log = logging.getLogger(__name__)

HEAVY_SCOPES = frozenset({"import", "snapshot", "run"})
_RATE_SETTINGS = {"user": "TANDEM_THROTTLE_USER", "anon": "TANDEM_THROTTLE_ANON"}
# Set on a request the fast path has counted before handing it to the DRF view: one request, one count.
COUNTED = "_tandem_throttle_counted"


class _TandemRate:
    """DRF's throttle classes (scopes, rates, Throttled and Retry-After) with two changes.

    The rate comes from the TANDEM_THROTTLE_* setting when the throttle is made, that is per request: DRF reads
    DEFAULT_THROTTLE_RATES once, at import, so a changed setting (a test, override_settings) would not apply.

    The count is a fixed window (one counter per key and window in the cache, added to in batches: _Counts)
    instead of DRF's list of every request's timestamp: that list is read, unpickled, pickled and written back on
    each request, ~800 entries for an annotator working flat out and up to the whole rate (6,000) for a client at
    the limit, which cost up to 0.4 ms a request in memory and 1 ms with Redis (bench/README.md); a counter costs
    the same whatever the rate. A client may get up to twice the rate across a window's boundary, which is fine
    for a limit that stops abuse.

    A cache that does not answer (Redis stopped) lets the request through: throttling protects the service, it
    must not be the thing that stops it.
    """

    def get_rate(self):
        name = "TANDEM_THROTTLE_HEAVY" if self.scope in HEAVY_SCOPES else _RATE_SETTINGS.get(self.scope)
        if name is None:
            raise ImproperlyConfigured(f"No throttle rate for scope {self.scope!r}")
        return getattr(settings, name)

    def allow_request(self, request, view):
        if not settings.TANDEM_THROTTLE_ENABLED or getattr(request, COUNTED, False):
            return True
        self.prepare(view)
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        try:
            return self.count() <= self.num_requests
        except (RedisError, OSError) as exc:
            log.warning("throttle cache unavailable, request let through: %s", exc)
            return True

    def prepare(self, view) -> None:
        """Settles the rate for this view (the rate of the class's scope, set when the throttle was made)."""

    def count(self) -> int:
        """This request's number in the current window (refused requests count too: the window still ends)."""
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        batch = max(1, self.num_requests // BATCH_DIVISOR)
        return _COUNTS.count(f"{self.key}_{window}", batch=batch, window_ends=self.window_ends, ttl=self.duration + 1)

    def wait(self) -> float:
        return max(0.0, self.window_ends - self.now)


class UserThrottle(_TandemRate, throttling.UserRateThrottle):
    """Per signed-in user. DRF's class would count anonymous calls per address as well, on a second key: they are
    AnonThrottle's alone."""

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None  # AnonThrottle's
        return super().get_cache_key(request, view)


class AnonThrottle(_TandemRate, throttling.AnonRateThrottle):
    pass


class ScopedThrottle(_TandemRate, throttling.ScopedRateThrottle):
    """A view's `throttle_scope` limits its writes only: the lists on the same URL (runs, datasets) stay free to poll."""

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)

    def prepare(self, view) -> None:
        # What ScopedRateThrottle.allow_request does before counting: the scope is the view's.
        self.scope = getattr(view, self.scope_attr, None)
        self.rate = self.get_rate() if self.scope else None
        if self.rate is not None:
            self.num_requests, self.duration = self.parse_rate(self.rate)


class _Counts:
    """This process's share of each counter: requests not yet added to the shared counter in the cache, and the
    shared count as last seen. A process adds its requests to the cache every `batch` requests of a key (1 for
    small rates: exact), so a key's count in the cache lags by less than `batch` per web process; with the default
    rate (6,000/min, batches of 60) a user may get 1 % more per process, and the annotator loop's requests touch
    the cache once in 60 instead of every time: one Redis command cost the web process ~0.1 ms of CPU per request
    at the loop's pace, 14 % of its CPU per judgment (bench/README.md)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, list] = {}  # key -> [unsent, shared count last seen, end of its window]

    def count(self, key: str, *, batch: int, window_ends: float, ttl: int) -> int:
        with self._lock:
            entry = self._keys.get(key)
            if entry is None:
                if len(self._keys) >= 10_000:
                    self._keys = {k: e for k, e in self._keys.items() if e[2] > window_ends - ttl}
                entry = self._keys[key] = [0, 0, window_ends]
            entry[0] += 1
            if entry[0] < batch:
                return entry[1] + entry[0]
            unsent, entry[0] = entry[0], 0
        shared = _cache_add(key, unsent, ttl)  # a cache error loses these few counts, and lets the request through
        with self._lock:
            entry[1] = max(entry[1], shared)
        return shared


BATCH_DIVISOR = 100
_COUNTS = _Counts()


def _cache_add(key: str, delta: int, ttl: int) -> int:
    """Adds to the shared counter and returns its new value, making it (with its expiry) if it is new. With Redis,
    one INCRBY (and an EXPIRE after the window's first): Django's incr() sends EXISTS first."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        full_key = backend.make_key(key)
        client = backend._cache.get_client(full_key, write=True)  # Django's RedisCacheClient (pinned Django 5.2)
        count = client.incr(full_key, delta)
        if count == delta:
            client.expire(full_key, ttl)
        return count
    try:
        return backend.incr(key, delta)
    except ValueError:  # the window's first
        if backend.add(key, delta, ttl):
            return delta
        return backend.incr(key, delta)


def client_address(request) -> str:
    """The client's address as DRF's throttles see it: REMOTE_ADDR, or the address TANDEM_PROXY_COUNT trusted
    proxies saw (X-Forwarded-For). django-axes uses it too (AXES_CLIENT_IP_CALLABLE), so both count the same
    address."""
    return throttling.BaseThrottle().get_ident(request)


def fast_path_wait(request, *, user_id: int, view) -> tuple[bool, float | None]:
    """What DRF's APIView.check_throttles decides for a request of `user_id` to `view` (a DRF view class), with
    the same throttle classes and cache keys: (refused, seconds to wait). The request is marked as counted, so the
    DRF view does not count it again if the fast path hands it on."""
    if not settings.TANDEM_THROTTLE_ENABLED:
        return False, None
    user = SimpleNamespace(pk=user_id, is_authenticated=True)
    signed_in = SimpleNamespace(user=user, META=request.META, method=request.method)
    waits = [t.wait() for t in (cls() for cls in view.throttle_classes) if not t.allow_request(signed_in, view)]
    setattr(request, COUNTED, True)
    if not waits:
        return False, None
    return True, max((w for w in waits if w is not None), default=None)
