"""Writes to the annotation domain, one module per topic; each service owns its transaction."""

from annotation.services.imports import ImportRejected, ImportReport, items_import
from annotation.services.members import member_add, member_remove
from annotation.services.projects import batch_get_or_create, criteria_version_create, project_create

__all__ = [
    "ImportRejected",
    "ImportReport",
    "batch_get_or_create",
    "criteria_version_create",
    "items_import",
    "member_add",
    "member_remove",
    "project_create",
]
