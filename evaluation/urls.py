"""The evaluation API (`/api/v1/...`): sets and generation runs (evaluation/apis.py), evaluation batches
(evaluation/apis_batches.py), results (evaluation/apis_results.py). Each part keeps its routes in its own block."""

from django.urls import path

import core.converters  # noqa: F401 - registers the <id:...> path converter used below
from evaluation import apis

app_name = "evaluation"

# Evaluation sets and generation runs (evaluation/apis.py).
urlpatterns = [
    path("projects/<id:project_id>/eval-sets/", apis.ProjectEvalSetsApi.as_view(), name="project-eval-sets"),
    path("eval-sets/<id:eval_set_id>/", apis.EvalSetDetailApi.as_view(), name="eval-set-detail"),
    path("eval-sets/<id:eval_set_id>/generations/", apis.EvalSetGenerationsApi.as_view(), name="eval-set-generations"),
    path(
        "projects/<id:project_id>/generation-runs/",
        apis.ProjectGenerationRunsApi.as_view(),
        name="project-generation-runs",
    ),
]

# Evaluation batches (evaluation/apis_batches.py).
from evaluation import apis_batches  # noqa: E402

urlpatterns += [
    path(
        "projects/<id:project_id>/evaluation-batches/",
        apis_batches.ProjectEvaluationBatchesApi.as_view(),
        name="project-evaluation-batches",
    ),
]

# Results (evaluation/apis_results.py).
from evaluation import apis_results  # noqa: E402

urlpatterns += [
    path(
        "evaluation-batches/<id:evaluation_batch_id>/results/",
        apis_results.EvaluationBatchResultsApi.as_view(),
        name="evaluation-batch-results",
    ),
    path(
        "projects/<id:project_id>/leaderboard/",
        apis_results.ProjectLeaderboardApi.as_view(),
        name="project-leaderboard",
    ),
]
