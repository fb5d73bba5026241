"""Annotation sessions: the server enforces the project's minutes, tasks and the break after a session.

A session has a kind (comparison, or demonstration: writing responses). An annotator may have one open session of
each kind on a project; the break after a session holds back a new session of either kind.
"""

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.errors import NotFound, NotMember, OnBreak
from annotation.models import AnnotationSession, Membership, Project
from core.authz import Action, roles_allowed
from core.errors import TandemError

ANNOTATING_ROLES = roles_allowed(Action.ANNOTATE)


class InvalidSessionKind(TandemError):
    status, code = 400, "invalid_kind"


def session_is_over(*, session: AnnotationSession, now: datetime) -> bool:
    return session.tasks_done >= session.max_tasks or now >= session.expires_at


def session_end_time(*, session: AnnotationSession) -> datetime:
    return session.ended_at or session.expires_at


@transaction.atomic
def session_start(
    *, project: Project, annotator: AbstractBaseUser, kind: str = AnnotationSession.Kind.COMPARISON
) -> tuple[AnnotationSession, bool]:
    """The annotator's open session of this kind on the project, or a new one; (session, created).

    Raises NotFound when the user has no role on the project (it looks like a missing one), NotMember when their
    role does not annotate, InvalidSessionKind for a kind that is not one, and OnBreak while the break after their
    last session (of either kind) runs.
    """
    role = Membership.objects.filter(project=project, user=annotator).values_list("role", flat=True).first()
    if role is None:
        raise NotFound("Not found.")  # the words of a missing project's 404
    if role not in ANNOTATING_ROLES:
        raise NotMember("You are not an annotator on this project.")
    if kind not in AnnotationSession.Kind.values:
        raise InvalidSessionKind(f"kind must be one of {', '.join(AnnotationSession.Kind.values)}.", field="kind")
    now = timezone.now()
    # Serialise one annotator's session starts so two tabs cannot open two sessions. (Not type(annotator):
    # under session auth request.user is a SimpleLazyObject.)
    get_user_model().objects.select_for_update().filter(pk=annotator.pk).first()
    mine = AnnotationSession.objects.filter(project=project, annotator=annotator).order_by("-started_at")
    latest = {k: mine.filter(kind=k).first() for k in AnnotationSession.Kind.values}
    last = latest[kind]
    if last is not None and not session_is_over(session=last, now=now):
        return last, False
    # The break follows the session that ended last, whatever its kind (an open one of the other kind is not over).
    ended = [s for s in latest.values() if s is not None and session_is_over(session=s, now=now)]
    if ended:
        break_ends = max(session_end_time(session=s) for s in ended) + timedelta(minutes=project.break_minutes)
        if now < break_ends:
            retry_after = max(1, int((break_ends - now).total_seconds() + 0.999))
            raise OnBreak("Take a break before the next session.", retry_after=retry_after)
    session = AnnotationSession.objects.create(
        project=project,
        kind=kind,
        annotator=annotator,
        started_at=now,
        expires_at=now + timedelta(minutes=project.session_minutes),
        max_tasks=project.session_max_tasks,
    )
    return session, True
