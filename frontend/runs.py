"""Run pages: the runs a user may see, and one run live (progress, charts, evaluation and its flags, lineage).

ML engineers and leads of the run's project (and superusers) may look; starting and cancelling stay with ML
engineers, through the API the page calls. The page lists the run's checkpoints (downloads through
/api/v1/checkpoints/<id>/download/, ML engineers only) and polls /api/v1/runs/<id>/metrics/, and reads the run itself
(/api/v1/runs/<id>/) whenever its status changes, to fill in lineage, evaluation and flags without a reload.
"""

import json

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from core.authz import Action, check
from trainer.models import Status, TrainingRun
from trainer.queue_state import run_queue_label, run_queue_state
from trainer.selectors import (
    checkpoint_can_download_in,
    id_from_query,
    run_can_start,
    run_checkpoints,
    run_duration_seconds,
    run_evaluation_summary,
    run_flags,
    run_list,
)


def step_text(*, status: str, step: int, total: int) -> str:
    """What the progress line says; runs.js says the same as the run moves on."""
    if total:
        if status in (Status.FAILED, Status.CANCELLED, Status.LOST) and step < total:
            return f"Stopped at step {step} of {total}"
        return f"Step {step} of {total} ({round(100 * step / total)} %)"
    return {
        Status.QUEUED: "Waiting for a worker",
        Status.RUNNING: "Waiting for the first step",
        Status.SUCCEEDED: "Finished",
        Status.FAILED: "Failed before its first step",
        Status.CANCELLED: "Cancelled before its first step",
        Status.LOST: "Lost before its first step",
    }.get(status, "")


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# The figures a checkpoint's row shows first, when it has them (DPO, PPO and RLOO log different names).
CHECKPOINT_METRICS_FIRST = ("loss", "reward_mean", "reward", "kl", "rewards_accuracies", "rewards_margins")


def checkpoint_metrics_text(metrics: dict, *, limit: int = 4) -> str:
    names = [n for n in CHECKPOINT_METRICS_FIRST if n in metrics] + sorted(
        n for n in metrics if n not in CHECKPOINT_METRICS_FIRST
    )
    return ", ".join(f"{name} {metrics[name]:.4g}" for name in names[:limit] if isinstance(metrics[name], int | float))


@login_required
def run_list_view(request):
    runs = run_list(user=request.user, project_id=id_from_query(request.GET.get("project")))[:200]
    rows = [
        {
            "run": run,
            "summary": run_evaluation_summary(run=run),
            "duration": duration_text(run_duration_seconds(run=run)),
            "flags": run_flags(run=run),
        }
        for run in runs
    ]
    return render(request, "frontend/runs/list.html", {"rows": rows})


def _admin_url(name: str) -> str:
    """An admin change page's URL with "{id}" where the object's id goes, for the page's script."""
    return reverse(name, args=[987654321]).replace("987654321", "{id}")


@login_required
@ensure_csrf_cookie  # the cancel button POSTs through the API with the cookie's token
def run_view(request, run_id: int):
    run = get_object_or_404(
        TrainingRun.objects.select_related("project", "snapshot", "reward_model", "created_by"), pk=run_id
    )
    check(user=request.user, action=Action.VIEW_RUNS, project=run.project_id, what="see its training runs")
    lineage = run.lineage or {}
    # Before the run starts its lineage is empty: the snapshot says the same.
    batches = list(run.snapshot.batches.select_related("criteria_version").order_by("pk")) if run.snapshot_id else []
    criteria = {b.criteria_version_id: b.criteria_version for b in batches}
    queue = run_queue_state(run=run)
    page = {
        "id": run.pk,
        "status": run.status,
        "active": run.status in (Status.QUEUED, Status.RUNNING),
        "can_cancel": run_can_start(user=request.user, project=run.project_id),
        "has_lineage": bool(lineage),
        # Where the lineage's batches and criteria versions link to when the script fills them in (staff only).
        "admin_urls": {
            "batch": _admin_url("admin:annotation_batch_change"),
            "criteria": _admin_url("admin:annotation_criteriaversion_change"),
        }
        if request.user.is_staff
        else None,
    }
    return render(
        request,
        "frontend/runs/detail.html",
        {
            "run": run,
            "page": page,
            "can_cancel": page["can_cancel"],
            "step_text": step_text(status=run.status, step=run.step, total=run.total_steps),
            "config_rows": sorted(run.config.items()),
            "evaluation_rows": sorted(run.evaluation.items()),
            "flags": run_flags(run=run),
            "batches": lineage.get("batches") or [{"id": b.pk, "name": b.name} for b in batches],
            "criteria_versions": lineage.get("criteria_versions")
            or [{"id": c.pk, "number": c.number} for c in sorted(criteria.values(), key=lambda c: c.number)],
            "code": lineage.get("code") or {},
            # Labelled sources a preference snapshot took (already-judged data), with their imported files.
            "labelled_sources": lineage.get("sources") or (run.snapshot.sources if run.snapshot_id else []),
            # SFT: the demonstrations behind the snapshot; any run: the run its base model came from (run:ID).
            "demonstrations": _people(lineage.get("demonstrations")),
            "base_run": _base_run_row(lineage.get("base_run")),
            "lineage_json": json.dumps(lineage, indent=2) if lineage else "",
            "show_admin_links": request.user.is_staff,
            # Why a queued run is not running yet (waiting for the broker, with the last error, or for a worker).
            "queue": queue,
            "queue_label": run_queue_label(run=run, queue=queue),
            # Saved along the run (policy kinds), the final one last; ML engineers may download their files.
            "checkpoints": [{"c": c, "metrics": checkpoint_metrics_text(c.metrics)} for c in run_checkpoints(run=run)],
            "can_download_checkpoints": checkpoint_can_download_in(user=request.user, project=run.project_id),
        },
    )


def _people(demonstrations: dict | None) -> dict | None:
    """An SFT snapshot's writers, reviewers and labelled sources from a lineage, as the page lists them."""
    if not demonstrations:
        return None

    def listed(counts) -> list[dict]:
        counts = counts if isinstance(counts, dict) else {}
        return [{"name": name, "count": n} for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    sources = [s.get("name") for s in demonstrations.get("sources") or [] if isinstance(s, dict) and s.get("name")]
    return {
        "writers": listed(demonstrations.get("writers")),
        "reviewers": listed(demonstrations.get("reviewers")),
        "sources": sources,
    }


def _base_run_row(base_run: dict | None) -> dict | None:
    """The run a base model came from (and the demonstrations behind it, when it was an SFT run)."""
    if not base_run or not isinstance(base_run.get("id"), int):
        return None
    from trainer.models import Kind

    kind = base_run.get("kind") or ""
    return {
        "id": base_run["id"],
        "kind": Kind(kind).label if kind in Kind.values else kind,
        "demonstrations": _people(base_run.get("demonstrations")),
    }
