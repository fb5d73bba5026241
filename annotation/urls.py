from django.urls import path

import core.converters  # noqa: F401 - registers the <id:...> path converter used below
from annotation import (
    annotator_apis,
    annotator_fast_path,
    apis,
    apis_demonstration_review,
    apis_labelled,
    apis_qualification,
)
from annotation.annotator_fast_path import with_fast_path

app_name = "annotation"
urlpatterns = [
    # The annotator loop, first (the most requested): a fast path for the common request, DRF's view for the rest
    # (annotation.annotator_fast_path).
    path(
        "sessions/<id:session_id>/next/",
        with_fast_path(annotator_apis.NextAssignmentApi.as_view(), annotator_fast_path.next_assignment),
        name="session-next",
    ),
    path(
        "assignments/<uuid:assignment_id>/judgment/",
        with_fast_path(annotator_apis.JudgmentSubmitApi.as_view(), annotator_fast_path.judgment),
        name="judgment-submit",
    ),
    path(
        "assignments/<uuid:assignment_id>/demonstration/",
        annotator_apis.DemonstrationSubmitApi.as_view(),
        name="demonstration-submit",
    ),
    path("assignments/<uuid:assignment_id>/skip/", annotator_apis.AssignmentSkipApi.as_view(), name="assignment-skip"),
    path("assignments/<uuid:assignment_id>/report/", annotator_apis.ItemReportApi.as_view(), name="item-report"),
    path(
        "assignments/<uuid:assignment_id>/renew/", annotator_apis.AssignmentRenewApi.as_view(), name="assignment-renew"
    ),
    path("judgments/<id:judgment_id>/revision/", annotator_apis.JudgmentRevisionApi.as_view(), name="judgment-revise"),
    path("projects/", apis.ProjectListApi.as_view(), name="project-list"),
    path("projects/<id:project_id>/members/", apis.MemberAddApi.as_view(), name="member-add"),
    path("projects/<id:project_id>/members/<str:username>/", apis.MemberDetailApi.as_view(), name="member-detail"),
    path("projects/<id:project_id>/imports/", apis.ItemImportApi.as_view(), name="item-import"),
    path("projects/<id:project_id>/labelled/", apis_labelled.LabelledImportApi.as_view(), name="labelled-import"),
    path("batches/<id:batch_id>/close/", apis.BatchCloseApi.as_view(), name="batch-close"),
    path("projects/<id:project_id>/sessions/", annotator_apis.SessionStartApi.as_view(), name="session-start"),
    path("sessions/<id:session_id>/", annotator_apis.SessionDetailApi.as_view(), name="session-detail"),
    path(
        "projects/<id:project_id>/qualification/",
        apis_qualification.QualificationListApi.as_view(),
        name="qualification-list",
    ),
    path(
        "projects/<id:project_id>/annotators/<id:user_id>/qualification/reset/",
        apis_qualification.QualificationResetApi.as_view(),
        name="qualification-reset",
    ),
]

# The lead's review of demonstrations (annotation/apis_demonstration_review.py).
urlpatterns += [
    path(
        "projects/<id:project_id>/demonstrations/",
        apis_demonstration_review.DemonstrationQueueApi.as_view(),
        name="demonstration-queue",
    ),
    path(
        "projects/<id:project_id>/demonstrations/writers/",
        apis_demonstration_review.DemonstrationWritersApi.as_view(),
        name="demonstration-writers",
    ),
    path(
        "demonstrations/<id:demonstration_id>/review/",
        apis_demonstration_review.DemonstrationReviewApi.as_view(),
        name="demonstration-review",
    ),
]
