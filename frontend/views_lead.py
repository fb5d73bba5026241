"""The lead's pages: their projects, a project's agreement dashboard, one annotator, the split-vote items.

Leads only (a lead membership; superusers count as leads, as in the lead API). The pages read stored snapshots
and never compute metrics; the split-items page lists what rewards' aggregation excludes.
"""

from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse

from annotation.models import Project
from annotation.selectors import judged_batches
from annotation.selectors_qualification import attempt_row, qualification_attempts
from core.authz import Action, project_for
from frontend.dashboard import (
    annotator_page,
    lead_projects_for,
    project_dashboard,
    split_items_page,
    with_texts,
)
from rewards.apis_drilldown import DrilldownFilterSerializer, drilldown_filters
from rewards.selectors_drilldown import annotator_judged_in, annotator_judgments, drilldown_rows

SPLIT_ITEMS_PER_PAGE = 25
JUDGMENTS_PER_PAGE = 50


def _lead_project(request, project_id: int) -> Project:
    return project_for(user=request.user, action=Action.VIEW_AGREEMENT, project_id=project_id)


def _csv_urls(project: Project) -> dict[str, str]:
    """The lead API's CSV downloads of each table (they accept the page's session login)."""
    return {
        "batches": reverse("rewards:project-agreement", args=[project.pk]) + "?format=csv",
        "annotators": reverse("rewards:project-agreement-annotators", args=[project.pk]) + "?format=csv",
        "split_items": reverse("rewards:split-items", args=[project.pk]) + "?format=csv",
    }


@login_required
def lead_home(request):
    projects = lead_projects_for(user=request.user)
    if not projects:
        raise PermissionDenied("You are not a lead on any project.")
    return render(request, "frontend/lead/home.html", {"projects": projects})


@login_required
def project_dashboard_view(request, project_id: int):
    project = _lead_project(request, project_id)
    context = project_dashboard(project=project)
    return render(request, "frontend/lead/project.html", {"project": project, "csv": _csv_urls(project), **context})


@login_required
def annotator_view(request, project_id: int, user_id: int):
    project = _lead_project(request, project_id)
    context = annotator_page(project=project, user_id=user_id)
    if context is None:
        raise Http404("No such annotator on this project.")
    # Qualification results (annotation.services.qualification), newest first.
    context["qualification"] = [
        attempt_row(attempt) for attempt in qualification_attempts(project=project, user_id=user_id)
    ]
    context["qualification_csv"] = reverse("annotation:qualification-list", args=[project.pk]) + "?format=csv"
    return render(request, "frontend/lead/annotator.html", {"project": project, "csv": _csv_urls(project), **context})


@login_required
def split_items_view(request, project_id: int):
    project = _lead_project(request, project_id)
    batches = list(judged_batches(project=project).order_by("created_at", "pk"))
    # The list is computed from every vote of the batches shown (seconds for a batch of 200,000 judgments), so
    # the page opens on the newest batch; "all" asks for every batch.
    choice = request.GET.get("batch") or (str(batches[-1].pk) if batches else "all")
    batch = None
    if choice != "all":
        batch = next((b for b in batches if str(b.pk) == choice), None)
        if batch is None:
            raise Http404("No such batch in this project.")
    entries = split_items_page(project=project, batch_id=batch.pk if batch else None) if batches else []
    page = Paginator(entries, SPLIT_ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = with_texts(list(page.object_list))  # texts of the shown items only
    csv_url = _csv_urls(project)["split_items"] + (f"&batch={batch.pk}" if batch else "")
    return render(
        request,
        "frontend/lead/split_items.html",
        {
            "project": project,
            "batches": batches,
            "batch": batch,
            "batch_param": choice,
            "page": page,
            "total": len(entries),
            "csv_url": csv_url,
        },
    )


@login_required
def annotator_judgments_view(request, project_id: int, user_id: int):
    """One annotator's votes, gold misses and justifications (VIEW_JUDGMENTS: who chose what), paged and filtered."""
    project = project_for(
        user=request.user, action=Action.VIEW_JUDGMENTS, project_id=project_id, what="see annotators' votes"
    )
    if not annotator_judged_in(project=project, user_id=user_id):
        raise Http404("This user has no judgment in this project.")
    # The form sends batch="" for every batch; a malformed query shows the unfiltered list rather than an error.
    form = DrilldownFilterSerializer(data={key: value for key, value in request.GET.items() if value})
    data = form.validated_data if form.is_valid() else {"gold_missed": False, "with_justification": False}
    filters = drilldown_filters(project=project, data=data)
    judgments = annotator_judgments(project=project, user_id=user_id, filters=filters)
    page = Paginator(judgments, JUDGMENTS_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = drilldown_rows(judgments=list(page.object_list))
    query = {
        key: value
        for key, value in (
            ("batch", filters.batch_id),
            ("gold_missed", 1 if filters.gold_missed else None),
            ("with_justification", 1 if filters.with_justification else None),
        )
        if value
    }
    api_url = reverse("rewards:annotator-judgments", args=[project.pk, user_id])
    return render(
        request,
        "frontend/lead/judgments.html",
        {
            "project": project,
            "user_id": user_id,
            "username": get_user_model().objects.filter(pk=user_id).values_list("username", flat=True).first(),
            "batches": list(judged_batches(project=project).order_by("created_at", "pk")),
            "filters": filters,
            "page": page,
            "query": urlencode(query),
            "csv_url": f"{api_url}?{urlencode({**query, 'format': 'csv'})}",
        },
    )
