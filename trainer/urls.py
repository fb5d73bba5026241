"""The training runs API (`/api/v1/runs/...`)."""

from django.urls import path  # noqa: F401 (routes are added with the runs API)

app_name = "trainer"
urlpatterns: list = []
