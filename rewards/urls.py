from django.urls import path

import core.converters  # noqa: F401 - registers the <id:...> path converter used below
from rewards import apis, apis_datasets, apis_drilldown

app_name = "rewards"
urlpatterns = [
    path("projects/<id:project_id>/agreement/", apis.ProjectAgreementApi.as_view(), name="project-agreement"),
    path(
        "projects/<id:project_id>/agreement/annotators/",
        apis.ProjectAnnotatorAgreementApi.as_view(),
        name="project-agreement-annotators",
    ),
    path("projects/<id:project_id>/split-items/", apis.SplitItemsApi.as_view(), name="split-items"),
    path(
        "projects/<id:project_id>/annotators/<id:user_id>/judgments/",
        apis_drilldown.AnnotatorJudgmentsApi.as_view(),
        name="annotator-judgments",
    ),
]

# Dataset snapshots (rewards/apis_datasets.py).
urlpatterns += [
    path("projects/<id:project_id>/datasets/", apis_datasets.ProjectDatasetsApi.as_view(), name="project-datasets"),
    path("datasets/<id:snapshot_id>/", apis_datasets.DatasetDetailApi.as_view(), name="dataset-detail"),
    path("datasets/<id:snapshot_id>/files/<str:name>/", apis_datasets.DatasetFileApi.as_view(), name="dataset-file"),
]

# A batch's raw judgments, streamed (rewards/apis_drilldown.py).
urlpatterns += [
    path("batches/<id:batch_id>/judgments/", apis_drilldown.BatchJudgmentsApi.as_view(), name="batch-judgments"),
]
