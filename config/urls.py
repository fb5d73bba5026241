"""Root URLs: admin, API v1, OpenAPI schema and docs, pages."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

import core.converters  # noqa: F401 - registers <id:...> (a bigint id or no match) before any URLconf uses it
from config.api_docs import RedocView, SchemaView, SwaggerView, login_first

# A URL that matches nothing (an id too large for the database, say) answers JSON under /api/.
handler404 = "core.not_found.not_found"

urlpatterns = [
    # First: Django tries the patterns in order, and the annotator loop's two endpoints are most of the traffic.
    path("api/v1/", include("annotation.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("rewards.urls")),
    path("api/v1/", include("trainer.urls")),
    path("api/v1/", include("evaluation.urls")),
    path("api/v1/", include("core.urls")),
    # Behind login unless TANDEM_API_DOCS_PUBLIC (config/api_docs.py).
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", login_first(SwaggerView.as_view(url_name="schema")), name="api-docs"),
    path("api/redoc/", login_first(RedocView.as_view(url_name="schema")), name="api-redoc"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's).
    path("favicon.ico", RedirectView.as_view(url=static("frontend/favicon.svg"))),
    path("", include("frontend.urls")),
]
