"""Maps domain errors to the API's answers: every error body has a `code` and a `detail`."""

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotation.errors import AnnotationError


def exception_handler(exc, context):
    if isinstance(exc, AnnotationError):
        response = Response({"code": exc.code, "detail": exc.detail, **exc.extra}, status=exc.status)
        if "retry_after" in exc.extra:
            response["Retry-After"] = str(exc.extra["retry_after"])
        return response
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "code" not in response.data:
        codes = exc.get_codes() if hasattr(exc, "get_codes") else None
        response.data = {"code": codes if isinstance(codes, str) else "invalid", **response.data}
    return response
