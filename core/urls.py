from django.urls import path

import core.converters  # noqa: F401 - registers the <id:...> path converter used below
from core import apis

app_name = "core"
urlpatterns = [
    path("jobs/<id:job_id>/", apis.JobDetailApi.as_view(), name="job-detail"),
]
