from django.urls import path

from frontend import runs, views, views_lead

app_name = "frontend"
urlpatterns = [
    path("", views.home, name="home"),
    path("annotate/<int:project_id>/", views.annotate, name="annotate"),
    path("runs/", runs.run_list_view, name="runs"),
    path("runs/<int:run_id>/", runs.run_view, name="run"),
    path("lead/", views_lead.lead_home, name="lead-home"),
    path("lead/projects/<int:project_id>/", views_lead.project_dashboard_view, name="lead-project"),
    path("lead/projects/<int:project_id>/annotators/<int:user_id>/", views_lead.annotator_view, name="lead-annotator"),
    path("lead/projects/<int:project_id>/split-items/", views_lead.split_items_view, name="lead-split-items"),
]
