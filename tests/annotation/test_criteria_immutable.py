"""Criteria versions are immutable in the database, not only in save(): QuerySet.update() and raw SQL that change a
version's content are refused by a trigger (annotation/migrations/0009_criteria_immutable.py), on SQLite and
PostgreSQL alike. New versions are still made as before."""

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from annotation.models import CriteriaVersion
from annotation.services import criteria_version_create
from annotation.services.projects import project_current_criteria
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

TRIGGER = "tandem_criteria_version_immutable"
CHANGES = {
    "dimensions": [{"key": "speed", "label": "Speed", "priority": 1, "description": "Fast."}],
    "disqualifiers": ["Anything at all"],
    "tie_rule": "ties_block",
    "tie_guidance": "Never tie.",
    "scope": "Something else.",
    "number": 99,
    "created_at": timezone.now(),
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_an_update_of_any_content_column_is_refused(project, field):
    version = project_current_criteria(project=project)
    before = CriteriaVersion.objects.filter(pk=version.pk).values().get()
    with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
        CriteriaVersion.objects.filter(pk=version.pk).update(**{field: CHANGES[field]})
    assert CriteriaVersion.objects.filter(pk=version.pk).values().get() == before


def test_moving_a_version_to_another_project_is_refused(project):
    other = ProjectFactory(name="Other")
    version = project_current_criteria(project=project)
    with pytest.raises(IntegrityError), transaction.atomic():
        CriteriaVersion.objects.filter(pk=version.pk).update(project=other)


def test_raw_sql_is_refused_too(project):
    version = project_current_criteria(project=project)
    table = connection.ops.quote_name(CriteriaVersion._meta.db_table)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET scope = %s WHERE id = %s", ["changed", version.pk])  # noqa: S608
    assert CriteriaVersion.objects.get(pk=version.pk).scope == version.scope


def test_new_versions_are_still_made_and_writing_the_same_values_is_harmless(project):
    first = project_current_criteria(project=project)
    second = criteria_version_create(
        project=project, dimensions=CHANGES["dimensions"], disqualifiers=[], scope="Speed only."
    )
    assert (second.number, second.scope) == (first.number + 1, "Speed only.")
    # An UPDATE that changes nothing is no change (Django's save() of an unchanged row would be one).
    assert CriteriaVersion.objects.filter(pk=first.pk).update(scope=first.scope) == 1


def test_deleting_the_author_still_clears_created_by(project):
    author = UserFactory(username="author")
    version = criteria_version_create(project=project, dimensions=[], disqualifiers=[], created_by=author)
    get_user_model().objects.filter(pk=author.pk).delete()  # on_delete=SET_NULL is an UPDATE of created_by only
    assert CriteriaVersion.objects.get(pk=version.pk).created_by is None


def test_the_trigger_is_installed_after_every_migration():
    # A later migration that rebuilds the table on SQLite would drop it silently: this says so.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname = %s AND NOT tgisinternal", [TRIGGER])
        else:
            cursor.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = %s", [TRIGGER])
        assert cursor.fetchone()[0] == 1
