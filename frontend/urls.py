from django.urls import path

from frontend import views

app_name = "frontend"
urlpatterns = [
    path("", views.home, name="home"),
    path("annotate/<int:project_id>/", views.annotate, name="annotate"),
]
