"""Maps domain errors to the API's answers: every error body has a `code` and a `detail`."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import TandemError


def exception_handler(exc, context):
    if isinstance(exc, TandemError):
        response = Response({"code": exc.code, "detail": exc.detail, **exc.extra}, status=exc.status)
        if "retry_after" in exc.extra:
            response["Retry-After"] = str(exc.extra["retry_after"])
        return response
    if isinstance(exc, Http404):
        # Django's 404s (get_object_or_404, core.authz for another project's object) all read the same, whatever
        # the model or the reason: a missing object and one the user may not see are indistinguishable.
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "code" not in response.data:
        codes = exc.get_codes() if hasattr(exc, "get_codes") else None
        response.data = {"code": codes if isinstance(codes, str) else "invalid", **response.data}
    return response
