"""Reads of qualification attempts (annotation.services.qualification): the lead's list, an annotator's history."""

from annotation.models import Project, QualificationAttempt
from annotation.services.qualification import needed_correct

QUALIFICATION_COLUMNS = [
    "id",
    "annotator_id",
    "username",
    "state",
    "started_at",
    "finished_at",
    "size",
    "answered",
    "correct",
    "needed",
    "score",
    "passed",
    "threshold",
    "criteria_version",
    "reset_at",
]


def attempt_state(attempt: QualificationAttempt) -> str:
    """in_progress, passed, failed, or reset (a lead allowed another attempt: this one no longer counts)."""
    if attempt.reset_at is not None:
        return "reset"
    if attempt.finished_at is None:
        return "in_progress"
    return "passed" if attempt.passed else "failed"


def qualification_attempts(*, project: Project, user_id: int | None = None) -> list[QualificationAttempt]:
    """The project's attempts, newest first; one annotator's with user_id."""
    attempts = QualificationAttempt.objects.filter(project=project).select_related("annotator")
    if user_id is not None:
        attempts = attempts.filter(annotator_id=user_id)
    return list(attempts.order_by("-started_at", "-pk"))


def attempt_row(attempt: QualificationAttempt) -> dict:
    return {
        "id": attempt.pk,
        "annotator_id": attempt.annotator_id,
        "username": attempt.annotator.get_username(),
        "state": attempt_state(attempt),
        "started_at": attempt.started_at,
        "finished_at": attempt.finished_at,
        "size": attempt.size,
        "answered": attempt.answered,
        "correct": attempt.correct,
        "needed": needed_correct(size=attempt.size, threshold=attempt.threshold),
        "score": attempt.score,
        "passed": attempt.passed,
        "threshold": attempt.threshold,
        "criteria_version": attempt.criteria_version,
        "reset_at": attempt.reset_at,
    }
