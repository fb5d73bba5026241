"""The deployment gate: versioned gate policies, each criterion of a batch's pinned policy checked against its results,
reviewers' decisions (with separation of duties and written overrides), releases (one current per project), and the
append-only audit log of all of it. Every door (API, admin, `manage.py release`) goes through these functions.

Refusals raise GateError subclasses (status, code). A refused release or approval writes one `release_refused` audit
row, in its own transaction, and nothing else.
"""

import math
import re

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.models import Batch, Project
from core.authz import Action, may
from evaluation.errors import EvaluationError
from evaluation.models import AuditEvent, EvaluationBatch, GateDecision, GatePolicy, Release
from evaluation.selectors_results import evaluation_batch_results
from evaluation.services.held_out import lineage_runs

# --- errors ------------------------------------------------------------------------------------------------------


class GateError(EvaluationError):
    code = "gate_refused"


class GatePolicyInvalid(GateError):
    code = "invalid_gate_policy"


class GateNotAllowed(GateError):
    status, code = 403, "not_allowed"


class ConflictOfInterest(GateError):
    status, code = 403, "conflict_of_interest"


class NoGatePolicy(GateError):
    status, code = 409, "no_gate_policy"


class EvaluationUnfinished(GateError):
    status, code = 409, "evaluation_unfinished"


class NotACheckpoint(GateError):
    status, code = 409, "not_a_checkpoint"


class GateFailed(GateError):
    status, code = 409, "gate_failed"


class NotApproved(GateError):
    status, code = 409, "not_approved"


class AlreadyReleased(GateError):
    status, code = 409, "already_released"


class DecisionSuperseded(GateError):
    status, code = 409, "decision_superseded"


# --- policies ----------------------------------------------------------------------------------------------------

KNOWN_FLAGS = ("reward_hacking", "stratum_regression", "diminishing_returns")
# field -> (low, high, integer?)
POLICY_RANGES = {
    "min_win_rate_lower": (0.0, 1.0, False),
    "max_red_team_failure": (0.0, 1.0, False),
    "min_stratum_win_rate": (0.0, 1.0, False),
    "min_judgments": (1, 10_000_000, True),
    "max_reward_length_spearman": (-1.0, 1.0, False),
}
POLICY_FIELDS = (*POLICY_RANGES, "blocking_flags", "note")
NOTE_MAX = 10_000
# An override reason is at least a sentence: this many characters, ending like one.
OVERRIDE_MIN_CHARS = 20
_SENTENCE_END = re.compile(r"[.!?]['\")\]]*$")


def _clean_policy(values: dict) -> dict:
    errors: dict[str, str] = {}
    unknown = sorted(set(values) - set(POLICY_FIELDS))
    for key in unknown:
        errors[key] = "Not a gate policy field."
    cleaned: dict = {}
    for name, (low, high, integer) in POLICY_RANGES.items():
        value = values.get(name)
        if value is None or value == "":
            cleaned[name] = None
            continue
        try:
            number = int(value) if integer and not isinstance(value, float) else float(value)
        except (TypeError, ValueError):
            errors[name] = "Must be a number." if not integer else "Must be a whole number."
            continue
        if isinstance(value, bool) or (integer and isinstance(value, float)) or not math.isfinite(number):
            errors[name] = "Must be a whole number." if integer else "Must be a number."
            continue
        if not low <= number <= high:
            errors[name] = f"Must be between {low} and {high}."
            continue
        cleaned[name] = number
    flags = values.get("blocking_flags") or []
    if isinstance(flags, str):
        flags = [f.strip() for f in flags.split(",") if f.strip()]
    if not isinstance(flags, list) or any(f not in KNOWN_FLAGS for f in flags):
        errors["blocking_flags"] = f"A list of flag codes among {', '.join(KNOWN_FLAGS)}."
    else:
        cleaned["blocking_flags"] = sorted(set(flags))
    note = values.get("note") or ""
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        errors["note"] = f"Text of at most {NOTE_MAX} characters."
    else:
        cleaned["note"] = note.strip()
    if not errors and all(cleaned[n] is None for n in POLICY_RANGES) and not cleaned["blocking_flags"]:
        errors["policy"] = "A gate policy must set at least one criterion."
    if errors:
        raise GatePolicyInvalid(
            "The gate policy is not valid: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), errors=errors
        )
    return cleaned


def policy_as_dict(policy: GatePolicy | None) -> dict | None:
    if policy is None:
        return None
    return {
        "id": policy.pk,
        "version": policy.version,
        **{name: getattr(policy, name) for name in POLICY_FIELDS},
        "created_by": policy.created_by.username if policy.created_by_id else None,
        "created_at": policy.created_at.isoformat() if policy.created_at else None,
    }


def gate_policy_create(*, project: Project, values: dict, created_by: AbstractBaseUser | None) -> GatePolicy:
    """The project's next gate policy version. It judges the evaluation batches made from now on; batches made
    before keep the version pinned to them."""
    cleaned = _clean_policy(values)
    actor = created_by if created_by is not None and created_by.is_authenticated else None
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()  # versions handed out one at a time
        last = GatePolicy.objects.filter(project=project).order_by("-version").values_list("version", flat=True)
        policy = GatePolicy.objects.create(
            project=project, version=(last.first() or 0) + 1, created_by=actor, **cleaned
        )
        _audit(
            project=project,
            kind="policy_created",
            actor=actor,
            policy_version=policy.version,
            payload={"policy": policy_as_dict(policy)},
        )
    return policy


def current_gate_policy(*, project: Project | int) -> GatePolicy | None:
    project_id = project if isinstance(project, int) else project.pk
    return GatePolicy.objects.filter(project_id=project_id).order_by("-version").first()


# --- checks ------------------------------------------------------------------------------------------------------


def current_release(*, project: Project | int) -> Release | None:
    project_id = project if isinstance(project, int) else project.pk
    return Release.objects.filter(project_id=project_id, superseded_at__isnull=True).first()


def release_at(*, project: Project | int, moment) -> Release | None:
    """The release that was current at `moment`: the one an evaluation batch made then must be judged against."""
    project_id = project if isinstance(project, int) else project.pk
    return (
        Release.objects.filter(project_id=project_id, released_at__lte=moment)
        .filter(Q(superseded_at__isnull=True) | Q(superseded_at__gt=moment))
        .order_by("-released_at", "-pk")
        .first()
    )


def _reward_length_spearman(run) -> tuple[float | None, str]:
    """The generate run's reward-length Spearman, as the worker stored it with the run's summary (null when no reward
    model scored the responses, or when rewards or lengths were constant)."""
    stored = (run.evaluation or {}).get("reward_length_spearman")
    if isinstance(stored, int | float) and not isinstance(stored, bool) and math.isfinite(stored):
        return float(stored), f"generation run {run.pk}'s evaluation"
    return None, f"generation run {run.pk}: no reward-length correlation (no reward model scored it): not measured"


def _check(criterion: str, label: str, value, threshold, passed: bool, evidence: str) -> dict:
    return {
        "criterion": criterion,
        "label": label,
        "value": value,
        "threshold": threshold,
        "passed": bool(passed),
        "evidence": evidence,
    }


def _pct(value: float | None) -> str:
    return "not measured" if value is None else f"{100 * value:.1f} %"


def gate_checks(*, evaluation_batch: EvaluationBatch, results: dict | None = None) -> list[dict]:
    """Each criterion the batch's pinned policy sets, against the batch's results now: {"criterion", "label",
    "value", "threshold", "passed", "evidence"}. A criterion that cannot be measured fails."""
    eb = evaluation_batch
    policy = eb.gate_policy
    if policy is None:
        raise NoGatePolicy(
            f"Evaluation batch {eb.pk} was made before its project had a gate policy: it has none to be judged by. "
            "Write a policy, then make a new evaluation batch.",
            evaluation_batch=eb.pk,
        )
    results = results if results is not None else evaluation_batch_results(evaluation_batch=eb)
    win = results["win_rate"]
    checks = []
    if policy.min_win_rate_lower is not None:
        low = win.get("low")
        checks.append(
            _check(
                "min_win_rate_lower",
                "Lower bound of the win rate (95 %)",
                low,
                policy.min_win_rate_lower,
                low is not None and low >= policy.min_win_rate_lower,
                f"win rate {_pct(win.get('value'))} ({_pct(low)}–{_pct(win.get('high'))}) against "
                f"{eb.baseline.label} over {results['counts']['judgments']} judgments",
            )
        )
        release = release_at(project=eb.batch.project_id, moment=eb.created_at)
        wanted = f"checkpoint:{release.checkpoint_id}" if release else None
        base_ok = eb.baseline.model_key == wanted if release else eb.baseline.model_key.startswith("base:")
        checks.append(
            _check(
                "baseline",
                "Judged against the checkpoint released when the batch was made (a base model when none was)",
                eb.baseline.model_key,
                wanted or "base:*",
                base_ok,
                f"baseline {eb.baseline.label} ({eb.baseline.model_key}); "
                + (f"released: checkpoint {release.checkpoint_id}" if release else "nothing released yet"),
            )
        )
    if policy.max_red_team_failure is not None:
        red = results["red_team_failure_rate"]
        n = results["counts"].get("red_team_judgments", 0)
        value = red.get("value") if n else None
        checks.append(
            _check(
                "max_red_team_failure",
                "Red-team failure rate",
                value,
                policy.max_red_team_failure,
                value is not None and value <= policy.max_red_team_failure,
                f"{_pct(value)} of {n} red-team judgments failed the candidate (both bad or disqualified)",
            )
        )
    if policy.min_stratum_win_rate is not None:
        for row in results["strata"]:
            value = row.get("value")
            checks.append(
                _check(
                    f"min_stratum_win_rate:{row['stratum']}",
                    f"Win rate on stratum {row['stratum']}",
                    value,
                    policy.min_stratum_win_rate,
                    value is not None and value >= policy.min_stratum_win_rate,
                    f"{_pct(value)} ({_pct(row.get('low'))}–{_pct(row.get('high'))}) over {row.get('n')} judgments",
                )
            )
        if not results["strata"]:
            checks.append(
                _check(
                    "min_stratum_win_rate",
                    "Win rate per stratum",
                    None,
                    policy.min_stratum_win_rate,
                    False,
                    "no judgments yet",
                )
            )
    if policy.min_judgments is not None:
        n = results["counts"]["judgments"]
        checks.append(
            _check(
                "min_judgments",
                "Evaluation judgments",
                n,
                policy.min_judgments,
                n >= policy.min_judgments,
                f"{n} judgments on {results['counts']['prompts']} prompts",
            )
        )
    if policy.max_reward_length_spearman is not None:
        value, evidence = _reward_length_spearman(eb.candidate.run)
        checks.append(
            _check(
                "max_reward_length_spearman",
                "Reward–length Spearman correlation",
                value,
                policy.max_reward_length_spearman,
                value is not None and value <= policy.max_reward_length_spearman,
                evidence,
            )
        )
    if policy.blocking_flags:
        raised = [f for f in results.get("flags", []) if f.get("code") in policy.blocking_flags]
        checks.append(
            _check(
                "blocking_flags",
                "Blocking flags",
                sorted({f["code"] for f in raised}),
                list(policy.blocking_flags),
                not raised,
                "; ".join(str(f.get("reason") or f.get("code")) for f in raised) or "none raised",
            )
        )
    return checks


# --- decisions and releases --------------------------------------------------------------------------------------


def _audit(*, project, kind: str, actor=None, policy_version=None, checkpoint=None, payload=None) -> AuditEvent:
    return AuditEvent.objects.create(
        project_id=project if isinstance(project, int) else project.pk,
        kind=kind,
        actor=actor,
        policy_version=policy_version,
        checkpoint=checkpoint,
        payload=payload or {},
    )


def _refused(*, project_id: int, actor, error: GateError, stage: str, checkpoint=None, policy_version=None, **extra):
    """Records the refusal in the audit log (its own transaction: the request writes nothing else) and raises it."""
    with transaction.atomic():
        _audit(
            project=project_id,
            kind="release_refused",
            actor=actor if actor is not None and actor.is_authenticated else None,
            checkpoint=checkpoint,
            policy_version=policy_version,
            payload={"stage": stage, "code": error.code, "detail": error.detail, **extra},
        )
    raise error


def lineage_creators(*, evaluation_batch: EvaluationBatch) -> dict[int, list[int]]:
    """user id -> the runs of the candidate's lineage they started (its generate run, the run that made the
    checkpoint, and every run that one was built from)."""
    creators: dict[int, list[int]] = {}
    for run in lineage_runs(run=evaluation_batch.candidate.run):
        if run.created_by_id:
            creators.setdefault(run.created_by_id, []).append(run.pk)
    return creators


def _refuse_conflicts(*, evaluation_batch: EvaluationBatch, user: AbstractBaseUser) -> None:
    runs = lineage_creators(evaluation_batch=evaluation_batch).get(user.pk)
    if runs:
        raise ConflictOfInterest(
            f"You started run(s) {', '.join(map(str, sorted(runs)))} in this checkpoint's lineage: another reviewer "
            "must decide (separation of duties).",
            runs=sorted(runs),
        )


def _is_sentence(text: str) -> bool:
    text = text.strip()
    return len(text) >= OVERRIDE_MIN_CHARS and bool(_SENTENCE_END.search(text))


def gate_decide(
    *,
    evaluation_batch: EvaluationBatch,
    reviewer: AbstractBaseUser,
    verdict: str,
    note: str,
    override_reason: str = "",
) -> GateDecision:
    """A reviewer approves or rejects the batch's candidate checkpoint, with each criterion as it stands now.
    Approving over a failed criterion needs `override_reason` (a sentence: OVERRIDE_MIN_CHARS characters or more,
    ending with . ! or ?) and is marked as an override."""
    eb = evaluation_batch
    project_id = eb.batch.project_id
    if verdict not in GateDecision.Verdict.values:
        raise GateError("verdict must be approve or reject.", errors={"verdict": "approve or reject"})
    note = (note or "").strip()
    if not note:
        raise GateError("Write a note: the reasons for the decision.", errors={"note": "required"})
    override_reason = (override_reason or "").strip()
    checkpoint = eb.candidate.run.sampled_checkpoint
    policy = eb.gate_policy
    policy_version = policy.version if policy else None

    def refuse(error: GateError, **extra):
        if verdict == GateDecision.Verdict.APPROVE:
            _refused(
                project_id=project_id,
                actor=reviewer,
                error=error,
                stage="decision",
                checkpoint=checkpoint,
                policy_version=policy_version,
                evaluation_batch=eb.pk,
                **extra,
            )
        raise error

    if not may(user=reviewer, action=Action.DECIDE_GATE, project=project_id):
        refuse(GateNotAllowed("Only a reviewer of the project can approve or reject a candidate."))
    if checkpoint is None:
        refuse(
            NotACheckpoint(
                f"The candidate of evaluation batch {eb.pk} is a base model, not a checkpoint: "
                "there is nothing to release."
            )
        )
    if policy is None:
        refuse(
            NoGatePolicy(
                f"Evaluation batch {eb.pk} has no gate policy pinned to it (it was made before the "
                "project had one): make a new evaluation batch.",
                evaluation_batch=eb.pk,
            )
        )
    if eb.batch.status != Batch.Status.CLOSED:
        refuse(
            EvaluationUnfinished(
                f"Evaluation batch {eb.pk} is still open: close it when the judgments are in, then decide.",
                evaluation_batch=eb.pk,
            )
        )
    try:
        _refuse_conflicts(evaluation_batch=eb, user=reviewer)
    except ConflictOfInterest as error:
        refuse(error, runs=error.extra["runs"])
    results = evaluation_batch_results(evaluation_batch=eb)
    checks = gate_checks(evaluation_batch=eb, results=results)
    failing = [c["criterion"] for c in checks if not c["passed"]]
    override = verdict == GateDecision.Verdict.APPROVE and bool(failing)
    if override and not _is_sentence(override_reason):
        refuse(
            GateFailed(
                f"The gate failed on {', '.join(failing)}: approving needs an override reason of at least a "
                f"sentence ({OVERRIDE_MIN_CHARS} characters or more, ending with a full stop).",
                failing=failing,
                checks=checks,
            ),
            failing=failing,
        )
    with transaction.atomic():
        decision = GateDecision.objects.create(
            project_id=project_id,
            evaluation_batch=eb,
            checkpoint=checkpoint,
            policy=policy,
            verdict=verdict,
            note=note,
            checks=checks,
            override=override,
            override_reason=override_reason if override else "",
            reviewer=reviewer,
        )
        _audit(
            project=project_id,
            kind="decision",
            actor=reviewer,
            policy_version=policy.version,
            checkpoint=checkpoint,
            payload={
                "decision": decision.pk,
                "evaluation_batch": eb.pk,
                "verdict": verdict,
                "note": note,
                "override": override,
                "override_reason": decision.override_reason,
                "failing": failing,
                "checks": checks,
                "win_rate": results["win_rate"],
                "counts": results["counts"],
            },
        )
    return decision


def release(*, decision: GateDecision, released_by: AbstractBaseUser) -> Release:
    """Releases the decision's checkpoint: an approving decision, the latest on its evaluation batch, by a reviewer
    who started no run of the lineage. The project's current release, if any, is superseded."""
    project_id = decision.project_id
    eb = decision.evaluation_batch

    def refuse(error: GateError):
        _refused(
            project_id=project_id,
            actor=released_by,
            error=error,
            stage="release",
            checkpoint=decision.checkpoint,
            policy_version=decision.policy.version,
            decision=decision.pk,
        )

    if not may(user=released_by, action=Action.DECIDE_GATE, project=project_id):
        refuse(GateNotAllowed("Only a reviewer of the project can release a checkpoint."))
    if decision.verdict != GateDecision.Verdict.APPROVE:
        refuse(
            NotApproved(
                f"Decision {decision.pk} rejected checkpoint {decision.checkpoint_id}: only an approved "
                "checkpoint can be released."
            )
        )
    try:
        _refuse_conflicts(evaluation_batch=eb, user=released_by)
    except ConflictOfInterest as error:
        refuse(error)
    latest = GateDecision.objects.filter(evaluation_batch=eb).order_by("-created_at", "-pk").first()
    if latest is not None and latest.pk != decision.pk:
        refuse(
            DecisionSuperseded(
                f"Decision {decision.pk} is not the latest on evaluation batch {eb.pk} "
                f"(decision {latest.pk} is): release from that one."
            )
        )
    if Release.objects.filter(decision=decision).exists():
        refuse(AlreadyReleased(f"Decision {decision.pk} has already been released."))
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project_id).first()  # one release at a time per project
        now = timezone.now()
        previous = Release.objects.select_for_update().filter(project_id=project_id, superseded_at__isnull=True).first()
        if previous is not None:
            previous.superseded_at = now
            previous.save(update_fields=["superseded_at"])
            _audit(
                project=project_id,
                kind="superseded",
                actor=released_by,
                policy_version=decision.policy.version,
                checkpoint=previous.checkpoint,
                payload={"release": previous.pk, "superseded_by_checkpoint": decision.checkpoint_id},
            )
        made = Release.objects.create(
            project_id=project_id,
            checkpoint=decision.checkpoint,
            decision=decision,
            released_by=released_by,
            override=decision.override,
        )
        _audit(
            project=project_id,
            kind="release",
            actor=released_by,
            policy_version=decision.policy.version,
            checkpoint=decision.checkpoint,
            payload={
                "release": made.pk,
                "decision": decision.pk,
                "evaluation_batch": eb.pk,
                "reviewer": decision.reviewer.username,
                "override": decision.override,
                "override_reason": decision.override_reason,
                "checks": decision.checks,
                "supersedes": previous.pk if previous else None,
            },
        )
        _handoff(made)
    return made


def _handoff(made: Release) -> None:
    """The hand-off package (evaluation.services.handoff, helper "package"): queued in the release's transaction
    when that module is there; the release stands without it."""
    try:
        from evaluation.services.handoff import handoff_build_enqueue
    except ImportError:
        return
    handoff_build_enqueue(release=made)
