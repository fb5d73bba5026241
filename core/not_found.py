"""The 404 of an address that matches no URL: JSON with a `code` under /api/, Django's page elsewhere.

A path id that is not a database id (core/converters.py) matches no URL; an API client then gets the same
`{"code", "detail"}` body as for any other refusal.
"""

from django.http import JsonResponse
from django.views.defaults import page_not_found


def not_found(request, exception):
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
    return page_not_found(request, exception)
