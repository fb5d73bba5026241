"""The gate page of an evaluation batch (each criterion of its pinned policy, in words, with its evidence; the
decisions; the reviewers' approve / reject form and release button) and a project's release history.

Everyone who sees releases (Action.VIEW_RELEASES: leads, ML engineers, reviewers) reads them; deciding and releasing
go through evaluation.services.gate, which holds the rules (reviewers only, separation of duties, overrides).
Annotators get a 403, non-members a 404.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse

from core.authz import Action, may, project_for
from core.errors import TandemError
from evaluation.models import GateDecision
from evaluation.selectors_gate import evaluation_batch_gate, project_releases
from evaluation.selectors_results import evaluation_batch_for
from evaluation.services.gate import OVERRIDE_MIN_CHARS, gate_decide, release


def _fmt(value) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def _decision_words(d: dict) -> dict:
    return {
        **d,
        "checks": [
            {**c, "value_text": _fmt(c.get("value")), "threshold_text": _fmt(c.get("threshold"))} for c in d["checks"]
        ],
    }


def _package_url(release_id: int) -> str | None:
    try:
        return reverse("evaluation:release-package", args=[release_id])
    except NoReverseMatch:  # the hand-off package's download (helper "package") is not routed
        return None


@login_required
def gate_view(request, project_id: int, evaluation_batch_id: int):
    project = project_for(user=request.user, action=Action.VIEW_RELEASES, project_id=project_id, what="see the gate")
    eb = evaluation_batch_for(evaluation_batch_id=evaluation_batch_id)
    if eb is None or eb.batch.project_id != project.pk:
        raise Http404("Not found.")
    error, status = None, 200
    if request.method == "POST":
        try:
            if request.POST.get("release"):
                wanted = request.POST["release"]
                decision = (
                    GateDecision.objects.filter(pk=int(wanted), evaluation_batch=eb).first()
                    if wanted.isdigit() and len(wanted) < 19
                    else None
                )
                if decision is None:
                    raise Http404("Not found.")
                made = release(decision=decision, released_by=request.user)
                messages.success(request, f"Checkpoint {made.checkpoint_id} released.")
            else:
                gate_decide(
                    evaluation_batch=eb,
                    reviewer=request.user,
                    verdict=request.POST.get("verdict", ""),
                    note=request.POST.get("note", ""),
                    override_reason=request.POST.get("override_reason", ""),
                )
                messages.success(request, "Decision recorded.")
            return redirect("frontend:gate", project.pk, eb.pk)
        except TandemError as exc:
            if exc.status == 403 and exc.code == "not_allowed":
                raise PermissionDenied(exc.detail) from exc
            error, status = exc, exc.status
    gate = evaluation_batch_gate(evaluation_batch=eb)
    checks = [
        {**c, "value_text": _fmt(c["value"]), "threshold_text": _fmt(c["threshold"])} for c in gate["checks"] or []
    ]
    context = {
        "project": project,
        "eb": eb,
        "gate": gate,
        "checks": checks,
        "failing": [c for c in checks if not c["passed"]],
        "decisions": [_decision_words(d) for d in gate["decisions"]],
        "may_decide": may(user=request.user, action=Action.DECIDE_GATE, project=project.pk),
        "error": error,
        "form": request.POST if error else {},
        "override_min": OVERRIDE_MIN_CHARS,
        "results_url": reverse("evaluation:evaluation-batch-results", args=[eb.pk]),
        "releases_url": reverse("frontend:releases", args=[project.pk]),
    }
    return render(request, "frontend/gate/gate.html", context, status=status)


@login_required
def releases_view(request, project_id: int):
    project = project_for(user=request.user, action=Action.VIEW_RELEASES, project_id=project_id, what="see releases")
    releases = [
        {
            **r,
            "package_url": _package_url(r["id"]) if r["package_path"] else None,
            "gate_url": reverse("frontend:gate", args=[project.pk, r["evaluation_batch"]]),
        }
        for r in project_releases(project=project)
    ]
    context = {
        "project": project,
        "releases": releases,
        "audit_url": reverse("evaluation:project-audit", args=[project.pk]),
    }
    return render(request, "frontend/gate/releases.html", context)
