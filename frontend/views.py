"""Pages. They call selectors and services; no business rules here."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.models import Project
from frontend.csp import strict_csp
from frontend.selectors import project_annotatable_by, project_cards_for


@strict_csp
def home(request):
    return render(request, "frontend/home.html", {"projects": project_cards_for(user=request.user)})


@strict_csp
@login_required
@ensure_csrf_cookie  # the page's JavaScript reads the token from the cookie for its POSTs
def annotate(request, project_id: int):
    """The annotator page. The HTML is a shell: the item, the sides and every number come from the API."""
    project = get_object_or_404(Project, pk=project_id)
    if not project_annotatable_by(project=project, user=request.user):
        raise PermissionDenied("You are not an annotator on this project.")
    return render(request, "frontend/annotate.html", {"project": project})
