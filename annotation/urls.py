from django.urls import path

from annotation import apis

app_name = "annotation"
urlpatterns = [
    path("projects/", apis.ProjectListApi.as_view(), name="project-list"),
    path("projects/<int:project_id>/members/", apis.MemberAddApi.as_view(), name="member-add"),
    path("projects/<int:project_id>/imports/", apis.ItemImportApi.as_view(), name="item-import"),
]
