"""Lockout: the answer to a locked-out login (django-axes' AXES_LOCKOUT_CALLABLE): 429 with Retry-After, as JSON with
a code for API clients and as a page for people; and the same rule for API tokens, counted per address.

django-axes counts failed logins per username and address (TANDEM_LOGIN_FAILURE_LIMIT); once locked out, every
attempt for that pair, the right password included, is refused until TANDEM_LOGIN_COOLOFF_MINUTES have passed
since the last one.
"""

import math
import time

from axes.helpers import get_cool_off
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from redis.exceptions import RedisError
from rest_framework.exceptions import APIException

DETAIL = "Too many failed logins for this username from this address. Try again later."


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    cool_off = get_cool_off(request)
    retry_after = math.ceil(cool_off.total_seconds()) if cool_off else None
    if _wants_json(request):
        response = JsonResponse({"code": "locked_out", "detail": DETAIL, "retry_after": retry_after}, status=429)
    else:
        minutes = math.ceil(retry_after / 60) if retry_after else None
        response = render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return (
        request.path.startswith("/api/")
        or request.headers.get("X-Requested-With") == "XMLHttpRequest"
        or ("application/json" in accept and "text/html" not in accept)
    )


# --- API tokens ----------------------------------------------------------------------------------------------------
# django-axes guards the login pages; a token has no username to pair with, so failed token authentications are
# counted per client address in Django's cache. Past TANDEM_TOKEN_FAILURE_LIMIT within the cool-off, every token
# request from that address (a right token included, so that guessing learns nothing) answers 429 until the
# cool-off has passed since the last failure. A cache that does not answer locks nobody out.

ADDRESS_LOCKED_DETAIL = "Too many failed token authentications from this address. Try again later."


class TokenLockedOut(APIException):
    status_code = 429
    default_code = "locked_out"
    default_detail = ADDRESS_LOCKED_DETAIL

    def __init__(self, wait: float):
        super().__init__()
        self.wait = wait  # DRF's handler writes it as Retry-After


def _token_key(address: str) -> str:
    return f"tandem-token-failures:{address}"


def token_lockout_wait(address: str) -> float | None:
    """Seconds this address must wait before a token is looked at again, or None when it is not locked out."""
    if not settings.AXES_ENABLED:
        return None
    try:
        failures = cache.get(_token_key(address))
    except (RedisError, OSError):
        return None
    if not failures or failures[0] < settings.TANDEM_TOKEN_FAILURE_LIMIT:
        return None
    remaining = failures[1] + settings.TANDEM_LOGIN_COOLOFF_MINUTES * 60 - time.time()
    return max(1.0, remaining) if remaining > 0 else None


# The annotator loop's fast path asks on every request; a process remembers each address's answer for a second, so
# that a lockout reaches it within a second and a normal client costs one cache read per second, not per request.
_RECENT: dict[str, tuple[float, float | None]] = {}
_RECENT_SECONDS = 1.0


def token_lockout_wait_recent(address: str) -> float | None:
    """token_lockout_wait, as this process read it within the last second."""
    if not settings.AXES_ENABLED:
        return None
    now = time.monotonic()
    known = _RECENT.get(address)
    if known is not None and now - known[0] < _RECENT_SECONDS:
        return known[1]
    wait = token_lockout_wait(address)
    if len(_RECENT) >= 10_000:
        _RECENT.clear()
    _RECENT[address] = (now, wait)
    return wait


def token_failure_record(address: str) -> None:
    """One more failed token authentication from `address`; the cool-off restarts from now."""
    if not settings.AXES_ENABLED:
        return
    cool_off = settings.TANDEM_LOGIN_COOLOFF_MINUTES * 60
    try:
        failures = cache.get(_token_key(address)) or (0, 0.0)
        cache.set(_token_key(address), (failures[0] + 1, time.time()), timeout=cool_off)
    except (RedisError, OSError):
        return
