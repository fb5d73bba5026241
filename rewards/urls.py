from django.urls import path

from rewards import apis

app_name = "rewards"
urlpatterns = [
    path("projects/<int:project_id>/agreement/", apis.ProjectAgreementApi.as_view(), name="project-agreement"),
    path(
        "projects/<int:project_id>/agreement/annotators/",
        apis.ProjectAnnotatorAgreementApi.as_view(),
        name="project-agreement-annotators",
    ),
    path("projects/<int:project_id>/split-items/", apis.SplitItemsApi.as_view(), name="split-items"),
]
