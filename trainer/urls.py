"""The training runs API (`/api/v1/runs/...`, `/api/v1/checkpoints/...`)."""

from django.urls import path

import core.converters  # noqa: F401 - registers the <id:...> path converter used below
from trainer import apis

app_name = "trainer"
urlpatterns = [
    path("runs/", apis.RunListCreateApi.as_view(), name="run-list"),
    path("runs/<id:run_id>/", apis.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<id:run_id>/metrics/", apis.RunMetricsApi.as_view(), name="run-metrics"),
    path("runs/<id:run_id>/cancel/", apis.RunCancelApi.as_view(), name="run-cancel"),
    path("runs/<id:run_id>/checkpoints/", apis.RunCheckpointsApi.as_view(), name="run-checkpoints"),
    path("checkpoints/<id:checkpoint_id>/download/", apis.CheckpointDownloadApi.as_view(), name="checkpoint-download"),
    path("projects/<id:project_id>/base-models/", apis.ProjectBaseModelsApi.as_view(), name="project-base-models"),
]
