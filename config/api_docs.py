"""The OpenAPI schema and its two readers, Swagger UI (/api/docs/) and Redoc (/api/redoc/), with their scripts served
from our own static files (drf-spectacular-sidecar) and no inline script or style, so they run under a strict CSP.

Behind login unless TANDEM_API_DOCS_PUBLIC: a person who is not logged in is sent to the login page; the schema
answers 401/403 to an anonymous client.
"""

from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.permissions import BasePermission


class DocsAccess(BasePermission):
    """Read at each request, so the setting can change without a restart of the view classes (tests do)."""

    def has_permission(self, request, view) -> bool:
        return settings.TANDEM_API_DOCS_PUBLIC or bool(request.user and request.user.is_authenticated)


class SchemaView(SpectacularAPIView):
    permission_classes = [DocsAccess]


class SwaggerView(SpectacularSwaggerSplitView):
    """The page and, at ?script, its start-up script: the split view exists for strict CSPs."""

    permission_classes = [DocsAccess]
    template_name = "api_docs/swagger_ui.html"


class RedocView(SpectacularRedocView):
    permission_classes = [DocsAccess]
    template_name = "api_docs/redoc.html"


def login_first(view):
    """A docs page for someone not logged in: the login page, which comes back here after."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not settings.TANDEM_API_DOCS_PUBLIC and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped
