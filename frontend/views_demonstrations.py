"""The lead's review page for written demonstrations: the queue (prompt, the text, accept / edit then accept /
reject with a reason) and the per-writer figures. Leads only (Action.REVIEW_DEMONSTRATIONS); the decision goes
through annotation.services.demonstration_review, as the API's and the admin's do.

The page works as plain forms (each review a POST, then back to the queue); frontend/review.js adds keyboard
shortcuts on top.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from annotation.models import Batch
from annotation.selectors_demonstration_review import (
    STATUSES,
    QueueFilters,
    demonstration_for_review,
    demonstration_queue,
    demonstration_row,
    project_writers,
    writer_figures,
)
from annotation.services.demonstration_review import REASON_MAX_CHARS, demonstration_review
from core.authz import Action, project_for
from core.errors import TandemError

PER_PAGE = 10


def _id(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


@login_required
def demonstrations_view(request, project_id: int):
    project = project_for(
        user=request.user, action=Action.REVIEW_DEMONSTRATIONS, project_id=project_id, what="review demonstrations"
    )
    if request.method == "POST":
        return _review(request, project)
    status = request.GET.get("status", "pending")
    if status not in (*STATUSES, "all"):
        status = "pending"
    batches = list(project.batches.filter(kind=Batch.Kind.DEMONSTRATION).order_by("created_at", "pk"))
    batch_id = _id(request.GET.get("batch"))
    if batch_id is not None and batch_id not in {b.pk for b in batches}:
        raise Http404("No such demonstration batch in this project.")
    writers = project_writers(project=project)
    writer_id = _id(request.GET.get("writer"))
    filters = QueueFilters(status=None if status == "all" else status, batch_id=batch_id, writer_id=writer_id)
    page = Paginator(demonstration_queue(project=project, filters=filters), PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = [demonstration_row(d) for d in page.object_list]
    query = {k: v for k, v in (("status", status), ("batch", batch_id), ("writer", writer_id)) if v}
    return render(
        request,
        "frontend/lead/demonstrations.html",
        {
            "project": project,
            "page": page,
            "statuses": [*STATUSES, "all"],
            "status": status,
            "batches": batches,
            "batch_id": batch_id,
            "writers": writers,
            "writer_id": writer_id,
            "query": urlencode(query),
            "figures": writer_figures(project=project, batch_id=batch_id),
            "reason_max": REASON_MAX_CHARS,
            "writers_api": reverse("annotation:demonstration-writers", args=[project.pk]),
        },
    )


def _review(request, project):
    """One review from the queue's form: decision accept (the editor's text: an edit if it differs) or reject (with
    the reason). Back to the queue as it was filtered, with what happened said at the top."""
    demonstration = demonstration_for_review(demonstration_id=_id(request.POST.get("demonstration")) or 0)
    if demonstration is None or demonstration.batch.project_id != project.pk:
        raise Http404("Not found.")
    decision = request.POST.get("decision", "")
    # The editor holds the text as written unless the lead changed it, with the line breaks a browser sends (CRLF):
    # the same text is no edit.
    edited = request.POST.get("edited_text", "").replace("\r\n", "\n") if decision == "accept" else ""
    if edited == demonstration.text.replace("\r\n", "\n"):
        edited = ""
    try:
        demonstration_review(
            demonstration_id=demonstration.pk,
            reviewer=request.user,
            decision=decision,
            edited_text=edited,
            reason=request.POST.get("reason", ""),
        )
    except TandemError as exc:
        messages.error(request, f"Demonstration {demonstration.pk} was not reviewed ({exc.code}): {exc.detail}")
    else:
        words = {"accept": "accepted", "reject": "rejected"}[decision]
        messages.success(request, f"Demonstration {demonstration.pk} {words}.")
    back = request.POST.get("back", "")
    url = reverse("frontend:lead-demonstrations", args=[project.pk])
    # Only our own query string comes back (no open redirect): it starts with ? and names no other host.
    return redirect(url + back if back.startswith("?") and "//" not in back else url)
