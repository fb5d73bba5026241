"""Reads of the annotation domain."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotation.models import Batch, Membership, Project


def project_roles_for(*, user: AbstractBaseUser) -> dict[int, str]:
    """The user's role in each project they are a member of (superusers hold no role without a membership:
    core.authz lets them do everything but annotate)."""
    if not user.is_authenticated:
        return {}
    return dict(Membership.objects.filter(user=user).values_list("project_id", "role"))


def project_list_for(*, user: AbstractBaseUser) -> QuerySet[Project]:
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


# Batches whose items annotators never judge here: labelled sources (annotation.services.labelled) come judged from
# elsewhere, demonstration batches are written, not judged (their review has its own page and figures). Agreement,
# drift baselines and the lead's batch lists leave them out (docs/LABELLED_DATA.md).
NOT_JUDGED_HERE = (Batch.Kind.LABELLED, Batch.Kind.DEMONSTRATION)


def judged_batches(*, project: Project | int) -> QuerySet[Batch]:
    """The project's batches that annotators judge: every kind but labelled sources and demonstration batches."""
    project_id = project if isinstance(project, int) else project.pk
    return Batch.objects.filter(project_id=project_id).exclude(kind__in=NOT_JUDGED_HERE)


def projects_with_open_demonstrations(*, project_ids) -> set[int]:
    """Which of these projects have an open demonstration batch (prompts waiting for written responses)."""
    return set(
        Batch.objects.filter(project_id__in=project_ids, kind=Batch.Kind.DEMONSTRATION, status=Batch.Status.OPEN)
        .values_list("project_id", flat=True)
        .distinct()
    )
