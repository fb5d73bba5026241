"""The annotator loop's two hot endpoints, `next` and the judgment, answered without DRF's request cycle.

These are the requests every annotator makes all day. DRF's request wrapping, content negotiation, authentication
and permission classes and response rendering cost more CPU than the work itself (bench/annotator_loop.py), so for
the common request this module calls the same services and writes the same bytes. "Common" means: credentials that
are a DRF token or a logged-in session (with its CSRF token on a POST), JSON in and out, a plain body. Anything
else (no or bad credentials, another Accept or content type, a query string, a body with a justification or a
mistake) goes to the DRF view, which stays the reference, and the source of the OpenAPI schema.
tests/annotation/test_fast_path.py holds the two to the same answers, headers included.

Set TANDEM_LOOP_FAST_PATH=False to send every request through DRF.
"""

import functools
import json

from django.conf import settings
from django.http import HttpResponse
from rest_framework.authentication import CSRFCheck
from rest_framework.exceptions import ParseError, Throttled
from rest_framework.utils.encoders import JSONEncoder

from annotation.annotator_apis import (
    JudgmentSubmitApi,
    NextAssignmentApi,
    _judgment_output,
    _plain_judgment,
    next_payload,
)
from annotation.authentication import user_id_for_token_key
from annotation.errors import NotFound
from annotation.services.assignments import NotComparisonSession, assignment_next_for
from annotation.services.judgments import judgment_submit
from core.errors import TandemError
from core.lockout import token_lockout_wait_recent
from core.parsers import loads as json_loads
from core.throttling import client_address, fast_path_wait


def with_fast_path(drf_view, fast):
    """The DRF view, tried after `fast`: fast(request, **kwargs) answers, or returns None to hand the request on.

    functools.wraps keeps the DRF view's attributes (cls, initkwargs, csrf_exempt), so URL reversing, CSRF
    handling and drf-spectacular see the DRF view.
    """

    @functools.wraps(drf_view)
    def view(request, **kwargs):
        if settings.TANDEM_LOOP_FAST_PATH:
            response = fast(request, **kwargs)
            if response is not None:
                return response
        return drf_view(request, **kwargs)

    return view


def next_assignment(request, *, session_id: int):
    if request.method != "GET" or not _negotiable(request):
        return None
    annotator_id = _annotator_id(request)
    if annotator_id is None:
        return None
    throttled = _throttled(request, annotator_id, view=NextAssignmentApi, allow=_NEXT_ALLOW)
    if throttled is not None:
        return throttled
    try:
        session, assignment = assignment_next_for(
            session_id=session_id, annotator_id=annotator_id, comparison_only=True
        )
    except NotFound:
        return None  # DRF tells a bad token (401) from someone else's session (404)
    except NotComparisonSession:
        return None  # a demonstration session: DRF's view answers it
    except TandemError as exc:
        return _error(exc, allow=_NEXT_ALLOW)
    if assignment is None:
        return _respond(None, 204, allow=_NEXT_ALLOW)
    return _respond(next_payload(assignment, session.project), 200, allow=_NEXT_ALLOW)


def judgment(request, *, assignment_id):
    if request.method != "POST" or not _negotiable(request) or request.content_type != "application/json":
        return None
    charset = request.content_params.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        return None
    try:
        # The API's own JSON limits (depth, NUL, lone surrogates): a body they refuse goes to DRF, whose parser
        # (the same function) words the 400.
        data = json_loads(request.body)
    except ParseError:  # malformed, not UTF-8, NaN or Infinity, too deep, unstorable text
        return None
    validated = _plain_judgment(data)
    if validated is None:
        return None
    annotator_id = _annotator_id(request)
    if annotator_id is None:
        return None
    throttled = _throttled(request, annotator_id, view=JudgmentSubmitApi, allow=_JUDGMENT_ALLOW)
    if throttled is not None:
        return throttled
    try:
        stored, created = judgment_submit(assignment_id=assignment_id, annotator_id=annotator_id, **validated)
    except NotFound:
        return None  # DRF tells a bad token (401) from someone else's assignment (404)
    except TandemError as exc:
        return _error(exc, allow=_JUDGMENT_ALLOW)
    return _respond(_judgment_output(stored), 201 if created else 200, allow=_JUDGMENT_ALLOW)


# What DRF's APIView adds to each answer of these views: the methods they define, and Vary: Accept because the
# project keeps DRF's two renderers (JSON and the browsable API).
def _allow(view_class) -> str:
    view = view_class()
    view.setup(None)  # as Django's view function does: a view with get() answers HEAD too
    return ", ".join(view.allowed_methods)


_NEXT_ALLOW = _allow(NextAssignmentApi)
_JUDGMENT_ALLOW = _allow(JudgmentSubmitApi)


def _negotiable(request) -> bool:
    """DRF would pick its JSON renderer: no ?format=, and an Accept header that asks for JSON or anything."""
    if request.META.get("QUERY_STRING"):
        return False
    accept = request.META.get("HTTP_ACCEPT")
    return accept is None or accept in ("*/*", "application/json")


def _annotator_id(request) -> int | None:
    """The id of the user DRF's authentication classes would settle on, when that is certain without them; None
    hands the request to DRF (which answers a bad key's 401, or a locked-out address's 429).

    SqlTokenAuthentication comes first: an Authorization header of the form "Token <key>" decides, and any other
    form is DRF's to answer. Without the header, a logged-in, active session user (SessionAuthentication), with
    DRF's CSRF check on unsafe methods.
    """
    header = request.META.get("HTTP_AUTHORIZATION")
    if header is not None:
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "token":
            return None
        if settings.AXES_ENABLED and token_lockout_wait_recent(client_address(request)) is not None:
            return None  # a locked-out address: DRF's authentication answers the 429 before looking at the key
        return user_id_for_token_key(parts[1])
    user = request.user  # AuthenticationMiddleware's, from the session
    if not user.is_authenticated or not user.is_active:
        return None
    if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
        check = CSRFCheck(lambda request: None)
        check.process_request(request)
        if check.process_view(request, None, (), {}) is not None:
            return None  # DRF answers the 403
    return user.pk


def _throttled(request, user_id: int, *, view, allow: str) -> HttpResponse | None:
    """The DRF view's throttles, run as its check_throttles would (core.throttling.fast_path_wait: same classes,
    same cache keys, the request counted once): the 429 it would answer, or None to go on."""
    if not settings.TANDEM_THROTTLE_ENABLED:
        return None
    refused, wait = fast_path_wait(request, user_id=user_id, view=view)
    if not refused:
        return None
    exc = Throttled(wait)
    response = _respond({"code": exc.default_code, "detail": str(exc.detail)}, exc.status_code, allow=allow)
    if exc.wait:
        response["Retry-After"] = str(int(exc.wait))  # as DRF writes it ("%d")
    return response


def _error(exc: TandemError, *, allow: str) -> HttpResponse:
    """core.api_errors.exception_handler's answer to a domain error."""
    response = _respond({"code": exc.code, "detail": exc.detail, **exc.extra}, exc.status, allow=allow)
    if "retry_after" in exc.extra:
        response["Retry-After"] = str(exc.extra["retry_after"])
    return response


def _respond(data, status: int, *, allow: str) -> HttpResponse:
    """What DRF's JSONRenderer and APIView.finalize_response make of Response(data, status)."""
    body = b""
    if data is not None:
        text = json.dumps(data, cls=JSONEncoder, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        body = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()
    response = HttpResponse(body, status=status, content_type="application/json")
    if not body:
        del response["Content-Type"]  # as DRF does for an empty body
    response["Allow"] = allow
    response["Vary"] = "Accept"
    return response
