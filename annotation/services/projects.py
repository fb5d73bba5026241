"""Projects, their criteria versions and batches."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max

from annotation.models import Batch, CriteriaVersion, Project, TieRule

# Seed practice for new projects: dimensions ranked by priority, absolute disqualifiers, a tie rule, a scope.
DEFAULT_CRITERIA = {
    "dimensions": [
        {
            "key": "harmlessness",
            "label": "Harmlessness",
            "priority": 1,
            "description": "Avoids content that could hurt the user or others.",
        },
        {
            "key": "honesty",
            "label": "Honesty",
            "priority": 2,
            "description": "States facts correctly and says when it does not know.",
        },
        {
            "key": "helpfulness",
            "label": "Helpfulness",
            "priority": 3,
            "description": "Does what was asked, completely and clearly.",
        },
    ],
    "disqualifiers": [
        "Gives dangerous instructions",
        "Presents made-up facts as true",
        "Ignores an explicit instruction in the prompt",
    ],
    "tie_rule": TieRule.IGNORE_TIES,
    "tie_guidance": "Choose tie only when neither response is better on any dimension; "
    "otherwise the higher-priority dimension decides.",
    "scope": "Judge the final response only, given the whole conversation as context.",
}


@transaction.atomic
def project_create(*, name: str, created_by: AbstractBaseUser | None = None, **fields) -> Project:
    project = Project(name=name, **fields)
    project.full_clean()
    project.save()
    criteria_version_create(project=project, created_by=created_by, **DEFAULT_CRITERIA)
    return project


@transaction.atomic
def criteria_version_create(
    *,
    project: Project,
    dimensions: list[dict],
    disqualifiers: list[str],
    tie_rule: str = TieRule.IGNORE_TIES,
    tie_guidance: str = "",
    scope: str = "",
    created_by: AbstractBaseUser | None = None,
) -> CriteriaVersion:
    """Makes the project's next criteria version; earlier versions and the batches pinned to them stay as they are."""
    Project.objects.select_for_update().filter(pk=project.pk).first()  # numbers are handed out one at a time
    last = project.criteria_versions.aggregate(n=Max("number"))["n"] or 0
    version = CriteriaVersion(
        project=project,
        number=last + 1,
        dimensions=dimensions,
        disqualifiers=disqualifiers,
        tie_rule=tie_rule,
        tie_guidance=tie_guidance,
        scope=scope,
        created_by=created_by,
    )
    version.full_clean()
    version.save()
    return version


def project_current_criteria(*, project: Project) -> CriteriaVersion:
    return project.criteria_versions.order_by("-number").first()


@transaction.atomic
def batch_get_or_create(*, project: Project, name: str, kind: str = Batch.Kind.COMPARISON) -> tuple[Batch, bool]:
    """A new batch pins the project's current criteria version. `kind` is the new batch's; an existing batch is
    returned as it is, whatever its kind (the caller decides whether that kind will do)."""
    batch = Batch.objects.filter(project=project, name=name).first()
    if batch is not None:
        return batch, False
    batch = Batch(project=project, name=name, kind=kind, criteria_version=project_current_criteria(project=project))
    batch.full_clean()
    batch.save()
    return batch, True
