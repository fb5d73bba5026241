"""The training runs API (`/api/v1/runs/...`)."""

from django.urls import path

import core.converters  # noqa: F401 - registers the <id:...> path converter used below
from trainer import apis

app_name = "trainer"
urlpatterns = [
    path("runs/", apis.RunListCreateApi.as_view(), name="run-list"),
    path("runs/<id:run_id>/", apis.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<id:run_id>/metrics/", apis.RunMetricsApi.as_view(), name="run-metrics"),
    path("runs/<id:run_id>/cancel/", apis.RunCancelApi.as_view(), name="run-cancel"),
]
