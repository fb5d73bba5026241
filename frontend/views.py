"""Pages. They call selectors and services; no business rules here."""

from django.shortcuts import render

from annotation.selectors import project_list_for


def home(request):
    projects = project_list_for(user=request.user) if request.user.is_authenticated else []
    return render(request, "frontend/home.html", {"projects": projects})
