"""Run pages: the runs a user may see, and one run live (progress, charts, evaluation, lineage).

ML engineers and leads of the run's project (and superusers) may look; starting and cancelling stay with ML
engineers, through the API the page calls. The charts poll /api/v1/runs/<id>/metrics/.
"""

import json

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import ensure_csrf_cookie

from core.authz import Action, check
from trainer.models import Status, TrainingRun
from trainer.queue_state import run_queue_label, run_queue_state
from trainer.selectors import id_from_query, run_can_start, run_list


@login_required
def run_list_view(request):
    runs = run_list(user=request.user, project_id=id_from_query(request.GET.get("project")))
    return render(request, "frontend/runs/list.html", {"runs": runs[:200]})


@login_required
@ensure_csrf_cookie  # the cancel button POSTs through the API with the cookie's token
def run_view(request, run_id: int):
    run = get_object_or_404(
        TrainingRun.objects.select_related("project", "snapshot", "reward_model", "created_by"), pk=run_id
    )
    check(user=request.user, action=Action.VIEW_RUNS, project=run.project_id, what="see its training runs")
    lineage = run.lineage or {}
    # Before the run starts its lineage is empty: the snapshot says the same.
    batches = list(run.snapshot.batches.select_related("criteria_version").order_by("pk"))
    criteria = {b.criteria_version_id: b.criteria_version for b in batches}
    queue = run_queue_state(run=run)
    page = {
        "id": run.pk,
        "status": run.status,
        "active": run.status in (Status.QUEUED, Status.RUNNING),
        "can_cancel": run_can_start(user=request.user, project=run.project_id),
    }
    return render(
        request,
        "frontend/runs/detail.html",
        {
            "run": run,
            "page": page,
            "can_cancel": page["can_cancel"],
            "config_rows": sorted(run.config.items()),
            "evaluation_rows": sorted(run.evaluation.items()),
            "batches": lineage.get("batches") or [{"id": b.pk, "name": b.name} for b in batches],
            "criteria_versions": lineage.get("criteria_versions")
            or [{"id": c.pk, "number": c.number} for c in sorted(criteria.values(), key=lambda c: c.number)],
            "code": lineage.get("code") or {},
            "lineage_json": json.dumps(lineage, indent=2) if lineage else "",
            "show_admin_links": request.user.is_staff,
            # Why a queued run is not running yet (waiting for the broker, with the last error, or for a worker).
            "queue": queue,
            "queue_label": run_queue_label(run=run, queue=queue),
        },
    )
