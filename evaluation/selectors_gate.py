"""Reads for the deployment gate: a batch's gate (policy, checks now, decisions), a project's policies, releases
and audit log, as plain dicts the API, the pages and the command share."""

from annotation.models import Project
from core.errors import TandemError
from evaluation.models import AuditEvent, EvaluationBatch, GateDecision, GatePolicy, Release
from evaluation.services.gate import current_release, gate_checks, policy_as_dict

AUDIT_COLUMNS = ["id", "at", "kind", "actor", "policy_version", "checkpoint", "payload"]


def decision_row(decision: GateDecision) -> dict:
    release = getattr(decision, "release", None) if hasattr(decision, "release") else None
    return {
        "id": decision.pk,
        "evaluation_batch": decision.evaluation_batch_id,
        "checkpoint": decision.checkpoint_id,
        "policy_version": decision.policy.version,
        "verdict": decision.verdict,
        "note": decision.note,
        "override": decision.override,
        "override_reason": decision.override_reason,
        "failing": [c["criterion"] for c in decision.checks if not c.get("passed")],
        "checks": decision.checks,
        "reviewer": decision.reviewer.username,
        "created_at": decision.created_at.isoformat(),
        "release": release.pk if release else None,
    }


def release_row(release: Release) -> dict:
    decision = release.decision
    return {
        "id": release.pk,
        "checkpoint": release.checkpoint_id,
        "checkpoint_label": f"run {release.checkpoint.run_id} · step {release.checkpoint.step}",
        "decision": decision.pk,
        "evaluation_batch": decision.evaluation_batch_id,
        "reviewer": decision.reviewer.username,
        "released_by": release.released_by.username,
        "released_at": release.released_at.isoformat(),
        "superseded_at": release.superseded_at.isoformat() if release.superseded_at else None,
        "current": release.superseded_at is None,
        "override": release.override,
        "override_reason": decision.override_reason,
        "policy_version": decision.policy.version,
        "package_path": release.package_path,
        "package_sha256": release.package_sha256,
    }


def evaluation_batch_gate(*, evaluation_batch: EvaluationBatch) -> dict:
    """The batch's pinned policy, each criterion against the results now (None with `problem` when they cannot be
    computed), and the decisions taken on it, newest first."""
    eb = evaluation_batch
    checks, problem = None, None
    try:
        checks = gate_checks(evaluation_batch=eb)
    except TandemError as exc:
        problem = {"code": exc.code, "detail": exc.detail}
    decisions = (
        GateDecision.objects.filter(evaluation_batch=eb)
        .select_related("policy", "reviewer", "release")
        .order_by("-created_at", "-pk")
    )
    checkpoint = eb.candidate.run.sampled_checkpoint_id if eb.candidate.run_id else None
    release = current_release(project=eb.batch.project_id)
    return {
        "evaluation_batch": eb.pk,
        "batch": {"id": eb.batch_id, "name": eb.batch.name, "status": eb.batch.status},
        "project_id": eb.batch.project_id,
        "candidate": {"run": eb.candidate.run_id, "label": eb.candidate.label, "model_key": eb.candidate.model_key},
        "baseline": {"run": eb.baseline.run_id, "label": eb.baseline.label, "model_key": eb.baseline.model_key},
        "checkpoint": checkpoint,
        "policy": policy_as_dict(eb.gate_policy),
        "checks": checks,
        "passed": None if checks is None else all(c["passed"] for c in checks),
        "problem": problem,
        "decisions": [decision_row(d) for d in decisions],
        "current_release": release_row(release) if release else None,
    }


def project_gate_policies(*, project: Project) -> list[dict]:
    policies = GatePolicy.objects.filter(project=project).select_related("created_by").order_by("-version")
    return [policy_as_dict(p) for p in policies]


def project_releases(*, project: Project) -> list[dict]:
    releases = (
        Release.objects.filter(project=project)
        .select_related("checkpoint", "decision__reviewer", "decision__policy", "released_by")
        .order_by("-released_at", "-pk")
    )
    return [release_row(r) for r in releases]


def project_audit(*, project: Project, limit: int | None = None) -> list[dict]:
    events = AuditEvent.objects.filter(project=project).select_related("actor").order_by("-at", "-pk")
    if limit is not None:
        events = events[:limit]
    return [
        {
            "id": e.pk,
            "at": e.at.isoformat(),
            "kind": e.kind,
            "actor": e.actor.username if e.actor_id else None,
            "policy_version": e.policy_version,
            "checkpoint": e.checkpoint_id,
            "payload": e.payload,
        }
        for e in events
    ]
