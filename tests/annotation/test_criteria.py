"""Criteria versions: immutable once made, numbered per project, pinned by every batch made under them."""

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command

from annotation.models import Batch, CriteriaVersion
from annotation.services import batch_get_or_create, criteria_version_create
from annotation.services.projects import project_current_criteria
from tests.factories import ProjectFactory

NEW_CRITERIA = {
    "dimensions": [{"key": "accuracy", "label": "Accuracy", "priority": 1, "description": "Facts are right."}],
    "disqualifiers": ["Makes up citations"],
    "tie_rule": "ties_block",
    "tie_guidance": "Tie only if both are equally accurate.",
    "scope": "Accuracy of the final answer only.",
}


def test_a_new_project_starts_at_version_1_with_the_seed_criteria(project):
    version = project_current_criteria(project=project)
    assert version.number == 1
    assert [d["key"] for d in sorted(version.dimensions, key=lambda d: d["priority"])] == [
        "harmlessness",
        "honesty",
        "helpfulness",
    ]
    assert version.disqualifiers
    assert version.tie_guidance
    assert version.scope


def test_saving_an_existing_version_raises(project):
    version = project_current_criteria(project=project)
    version.scope = "Something else"
    with pytest.raises(ValueError, match="immutable"):
        version.save()
    version.refresh_from_db()
    assert version.scope != "Something else"


def test_a_new_version_gets_the_next_number_and_becomes_current(project, lead):
    v2 = criteria_version_create(project=project, created_by=lead, **NEW_CRITERIA)
    v3 = criteria_version_create(project=project, **NEW_CRITERIA)
    assert (v2.number, v3.number) == (2, 3)
    assert v2.created_by == lead
    assert project_current_criteria(project=project) == v3
    assert CriteriaVersion.objects.get(project=project, number=1).dimensions[0]["key"] == "harmlessness"


def test_numbers_are_per_project(project):
    other = ProjectFactory(name="Other")
    criteria_version_create(project=project, **NEW_CRITERIA)
    assert criteria_version_create(project=other, **NEW_CRITERIA).number == 2
    assert project_current_criteria(project=project).number == 2


def test_batches_keep_the_version_they_were_made_under(project):
    old_batch, created = batch_get_or_create(project=project, name="week 1")
    assert created
    assert old_batch.criteria_version.number == 1
    criteria_version_create(project=project, **NEW_CRITERIA)
    old_batch.refresh_from_db()
    assert old_batch.criteria_version.number == 1
    assert old_batch.criteria_version.tie_rule == "ignore_ties"
    same, created = batch_get_or_create(project=project, name="week 1")
    assert not created
    assert same.criteria_version.number == 1
    new_batch, _ = batch_get_or_create(project=project, name="week 2")
    assert new_batch.criteria_version.number == 2


def test_an_import_into_a_new_batch_pins_the_current_version(project, tmp_path):
    line = {"prompt": "p", "response_a": {"text": "a"}, "response_b": {"text": "b"}, "stratum": "usage"}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(line) + "\n")
    call_command("import_items", str(path), "--project", "Demo", "--batch", "before", stdout=StringIO())
    criteria_version_create(project=project, **NEW_CRITERIA)
    path.write_text(json.dumps({**line, "prompt": "q"}) + "\n")
    call_command("import_items", str(path), "--project", "Demo", "--batch", "after", stdout=StringIO())
    assert Batch.objects.get(name="before").criteria_version.number == 1
    assert Batch.objects.get(name="after").criteria_version.number == 2


def test_a_version_used_by_a_batch_cannot_be_deleted(project):
    batch, _ = batch_get_or_create(project=project, name="b")
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        batch.criteria_version.delete()


# --- In the admin --------------------------------------------------------------------------------


def change_url(version) -> str:
    return f"/admin/annotation/criteriaversion/{version.pk}/change/"


def test_admin_change_page_shows_the_version_read_only(client, superuser, project):
    client.force_login(superuser)
    version = project_current_criteria(project=project)
    response = client.get(change_url(version))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Avoids content that could hurt the user or others." in html
    assert "Gives dangerous instructions" in html
    for name in ("dimensions", "disqualifiers", "tie_rule", "tie_guidance", "scope", "project"):
        assert not re.search(rf'<(input|textarea|select)[^>]*name="{name}"', html), name


def test_admin_post_to_an_existing_version_changes_nothing(client, superuser, project):
    client.force_login(superuser)
    version = project_current_criteria(project=project)
    before = CriteriaVersion.objects.filter(pk=version.pk).values().get()
    client.post(change_url(version), {"scope": "Hijacked", "tie_guidance": "x", "dimensions": "[]"})
    assert CriteriaVersion.objects.filter(pk=version.pk).values().get() == before
    assert CriteriaVersion.objects.filter(project=project).count() == 1


def test_admin_add_form_makes_the_next_version(client, superuser, project):
    client.force_login(superuser)
    criteria_version_create(project=project, **NEW_CRITERIA)  # v2 exists, so the form must make v3
    form = client.get(f"/admin/annotation/criteriaversion/add/?project={project.pk}")
    assert form.status_code == 200
    assert "Accuracy of the final answer only." in form.content.decode()  # starts from the current version
    response = client.post(
        "/admin/annotation/criteriaversion/add/",
        {
            "project": project.pk,
            "dimensions": json.dumps(NEW_CRITERIA["dimensions"]),
            "disqualifiers": json.dumps(["Makes up citations", "Insults the user"]),
            "tie_rule": "ignore_ties",
            "tie_guidance": "Prefer the more accurate one.",
            "scope": "Everything.",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    v3 = project_current_criteria(project=project)
    assert v3.number == 3
    assert v3.disqualifiers == ["Makes up citations", "Insults the user"]
    assert v3.created_by == superuser
    assert CriteriaVersion.objects.filter(project=project).count() == 3


def test_admin_new_batch_pins_the_current_version(client, superuser, project):
    client.force_login(superuser)
    batch_get_or_create(project=project, name="old")
    criteria_version_create(project=project, **NEW_CRITERIA)
    response = client.post("/admin/annotation/batch/add/", {"project": project.pk, "name": "new", "status": "open"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Batch.objects.get(name="new").criteria_version.number == 2
    assert Batch.objects.get(name="old").criteria_version.number == 1
