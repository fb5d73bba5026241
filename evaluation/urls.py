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

# The deployment gate (evaluation/apis_gate.py).
from evaluation import apis_gate  # noqa: E402

urlpatterns += [
    path(
        "projects/<id:project_id>/gate-policies/",
        apis_gate.ProjectGatePoliciesApi.as_view(),
        name="project-gate-policies",
    ),
    path(
        "evaluation-batches/<id:evaluation_batch_id>/gate/",
        apis_gate.EvaluationBatchGateApi.as_view(),
        name="evaluation-batch-gate",
    ),
    path(
        "evaluation-batches/<id:evaluation_batch_id>/decisions/",
        apis_gate.EvaluationBatchDecisionsApi.as_view(),
        name="evaluation-batch-decisions",
    ),
    path("decisions/<id:decision_id>/release/", apis_gate.DecisionReleaseApi.as_view(), name="decision-release"),
    path("projects/<id:project_id>/releases/", apis_gate.ProjectReleasesApi.as_view(), name="project-releases"),
    path("projects/<id:project_id>/audit/", apis_gate.ProjectAuditApi.as_view(), name="project-audit"),
]

# The hand-off package (evaluation/apis_handoff.py).
from evaluation import apis_handoff  # noqa: E402

urlpatterns += [
    path("releases/<id:release_id>/package/", apis_handoff.ReleasePackageApi.as_view(), name="release-package"),
]
