"""Root URLs: admin, API v1, OpenAPI schema and docs, pages."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    # First: Django tries the patterns in order, and the annotator loop's two endpoints are most of the traffic.
    path("api/v1/", include("annotation.urls")),
    path("admin/", admin.site.urls),
    path("", include("frontend.auth_urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("rewards.urls")),
    path("api/v1/", include("trainer.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("frontend.urls")),
]
