"""The training runs API (`/api/v1/runs/...`)."""

from django.urls import path

from trainer import apis

app_name = "trainer"
urlpatterns = [
    path("runs/", apis.RunListCreateApi.as_view(), name="run-list"),
    path("runs/<int:run_id>/", apis.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<int:run_id>/metrics/", apis.RunMetricsApi.as_view(), name="run-metrics"),
    path("runs/<int:run_id>/cancel/", apis.RunCancelApi.as_view(), name="run-cancel"),
]
