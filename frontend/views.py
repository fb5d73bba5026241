"""Pages. They call selectors and services; no business rules here."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from core.authz import Action, project_for
from frontend.selectors import project_cards_for


def home(request):
    return render(request, "frontend/home.html", {"projects": project_cards_for(user=request.user)})


@login_required
@ensure_csrf_cookie  # the page's JavaScript reads the token from the cookie for its POSTs
def annotate(request, project_id: int):
    """The annotator page. The HTML is a shell: the item, the sides and every number come from the API."""
    project = project_for(user=request.user, action=Action.ANNOTATE, project_id=project_id, what="annotate here")
    return render(request, "frontend/annotate.html", {"project": project})


@login_required
@ensure_csrf_cookie
def write(request, project_id: int):
    """The writing page (a demonstration session). A shell like the annotator page: everything comes from the API."""
    project = project_for(user=request.user, action=Action.ANNOTATE, project_id=project_id, what="write here")
    return render(request, "frontend/write.html", {"project": project})
