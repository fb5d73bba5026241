from django.urls import path

from annotation import annotator_apis, apis

app_name = "annotation"
urlpatterns = [
    path("projects/", apis.ProjectListApi.as_view(), name="project-list"),
    path("projects/<int:project_id>/members/", apis.MemberAddApi.as_view(), name="member-add"),
    path("projects/<int:project_id>/imports/", apis.ItemImportApi.as_view(), name="item-import"),
    path("batches/<int:batch_id>/close/", apis.BatchCloseApi.as_view(), name="batch-close"),
    path("projects/<int:project_id>/sessions/", annotator_apis.SessionStartApi.as_view(), name="session-start"),
    path("sessions/<int:session_id>/", annotator_apis.SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<int:session_id>/next/", annotator_apis.NextAssignmentApi.as_view(), name="session-next"),
    path(
        "assignments/<uuid:assignment_id>/judgment/", annotator_apis.JudgmentSubmitApi.as_view(), name="judgment-submit"
    ),
]
