from django.urls import path

import core.converters  # noqa: F401 - registers the <id:...> path converter used below
from frontend import runs, views, views_checkpoints, views_demonstrations, views_gate, views_lead

app_name = "frontend"
urlpatterns = [
    path("", views.home, name="home"),
    path("annotate/<id:project_id>/", views.annotate, name="annotate"),
    path("annotate/<id:project_id>/write/", views.write, name="write"),
    path("runs/", runs.run_list_view, name="runs"),
    path("runs/<id:run_id>/", runs.run_view, name="run"),
    path("lead/", views_lead.lead_home, name="lead-home"),
    path("lead/projects/<id:project_id>/", views_lead.project_dashboard_view, name="lead-project"),
    path("lead/projects/<id:project_id>/annotators/<id:user_id>/", views_lead.annotator_view, name="lead-annotator"),
    path(
        "lead/projects/<id:project_id>/annotators/<id:user_id>/judgments/",
        views_lead.annotator_judgments_view,
        name="lead-annotator-judgments",
    ),
    path("lead/projects/<id:project_id>/split-items/", views_lead.split_items_view, name="lead-split-items"),
    path("projects/<id:project_id>/checkpoints/", views_checkpoints.checkpoints_view, name="checkpoints"),
    path("projects/<id:project_id>/generations/", views_checkpoints.generations_view, name="generations"),
    path("projects/<id:project_id>/gate/<id:evaluation_batch_id>/", views_gate.gate_view, name="gate"),
    path("projects/<id:project_id>/releases/", views_gate.releases_view, name="releases"),
]

# The lead's review of written demonstrations (frontend/views_demonstrations.py).
urlpatterns += [
    path(
        "lead/projects/<id:project_id>/demonstrations/",
        views_demonstrations.demonstrations_view,
        name="lead-demonstrations",
    ),
]
