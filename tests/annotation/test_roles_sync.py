"""Roles are the single source of admin access: removing a member or demoting them takes the admin away at once,
through the service, the command, the admin and the API alike."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from annotation.models import Membership
from annotation.services import member_add, member_remove
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def _fresh(user):
    return get_user_model().objects.get(pk=user.pk)


def _groups(user) -> set[str]:
    return set(_fresh(user).groups.values_list("name", flat=True))


def _admin_index(user) -> int:
    client = Client()
    client.force_login(_fresh(user))
    return client.get("/admin/").status_code


def test_demotion_and_removal_through_the_services(project):
    user = UserFactory(username="dana")
    member_add(project=project, username="dana", role="lead")
    assert _fresh(user).is_staff and _groups(user) == {"lead"} and _admin_index(user) == 200

    member_add(project=project, username="dana", role="annotator")  # demoted
    assert not _fresh(user).is_staff
    assert _groups(user) == {"annotator"}
    assert _admin_index(user) == 302

    member_add(project=project, username="dana", role="ml_engineer")
    assert _fresh(user).is_staff and _groups(user) == {"ml_engineer"}
    assert member_remove(project=project, username="dana")
    assert not _fresh(user).is_staff and _groups(user) == set() and _admin_index(user) == 302


def test_a_staff_role_elsewhere_keeps_the_admin_and_only_its_group(project):
    other = ProjectFactory(name="Other")
    user = UserFactory(username="eli")
    member_add(project=project, username="eli", role="lead")
    member_add(project=other, username="eli", role="ml_engineer")
    member_remove(project=project, username="eli")
    assert _fresh(user).is_staff and _groups(user) == {"ml_engineer"}
    member_add(project=other, username="eli", role="annotator")
    assert not _fresh(user).is_staff and _groups(user) == {"annotator"}


def test_a_stale_staff_flag_opens_nothing(project):
    """The admin site asks for a staff role held now, not only the flag (set by hand, or left by an old version)."""
    user = UserFactory(username="stale")
    member_add(project=project, username="stale", role="annotator")
    get_user_model().objects.filter(pk=user.pk).update(is_staff=True)
    assert _admin_index(user) == 302


def test_the_command_removes_members(project):
    user = UserFactory(username="fay")
    call_command("add_members", "fay", project=project.name, role="lead")
    assert _fresh(user).is_staff
    call_command("remove_members", "fay", project=project.name)
    assert not _fresh(user).is_staff and not Membership.objects.filter(user=user).exists()


def test_the_api_removes_and_demotes(lead_client, project):
    user = UserFactory(username="gus")
    assert (
        lead_client.post(f"/api/v1/projects/{project.pk}/members/", {"username": "gus", "role": "lead"}).status_code
        == 201
    )
    assert _admin_index(user) == 200
    demote = lead_client.post(f"/api/v1/projects/{project.pk}/members/", {"username": "gus", "role": "annotator"})
    assert demote.status_code == 200 and _admin_index(user) == 302
    assert lead_client.delete(f"/api/v1/projects/{project.pk}/members/gus/").status_code == 204
    assert _groups(user) == set()
    again = lead_client.delete(f"/api/v1/projects/{project.pk}/members/gus/")
    assert again.status_code == 404 and again.json()["code"] == "not_found"


def test_the_admin_removes_and_demotes(lead, project):
    user = UserFactory(username="hal")
    member_add(project=project, username="hal", role="ml_engineer")
    membership = Membership.objects.get(user=user)
    client = Client()
    client.force_login(lead)
    response = client.post(f"/admin/annotation/membership/{membership.pk}/change/", {"role": "annotator"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not _fresh(user).is_staff and _groups(user) == {"annotator"}
    member_add(project=project, username="hal", role="lead")
    response = client.post(f"/admin/annotation/membership/{membership.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Membership.objects.filter(user=user).exists()
    assert not _fresh(user).is_staff and _groups(user) == set() and _admin_index(user) == 302


def test_the_admin_adds_members_by_username_only_in_the_leads_projects(lead, project):
    other = ProjectFactory(name="Not yours")
    UserFactory(username="ivy")
    client = Client()
    client.force_login(lead)
    page = client.get("/admin/annotation/membership/add/").content.decode()
    assert "Not yours" not in page and "ivy" not in page  # no list of the instance's users or projects
    refused = client.post("/admin/annotation/membership/add/", {"project": other.pk, "username": "ivy", "role": "lead"})
    assert refused.status_code == 200 and not Membership.objects.filter(project=other).exists()
    added = client.post("/admin/annotation/membership/add/", {"project": project.pk, "username": "ivy", "role": "lead"})
    assert added.status_code == 302
    assert _fresh(get_user_model().objects.get(username="ivy")).is_staff
    unknown = client.post(
        "/admin/annotation/membership/add/", {"project": project.pk, "username": "nobody-here", "role": "lead"}
    )
    assert "No user named" in unknown.content.decode()


def test_project_page_inline_goes_through_the_service(lead, project):
    UserFactory(username="jo")
    client = Client()
    client.force_login(lead)
    page = client.get(f"/admin/annotation/project/{project.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form.initial.get(name, "") for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        prefix = formset.formset.prefix
        data.update({f"{prefix}-{k}": v for k, v in management.initial.items()})
        for index, inline_form in enumerate(formset.formset.initial_forms):
            for name in inline_form.fields:
                value = inline_form.initial.get(name, "")
                data[f"{prefix}-{index}-{name}"] = "" if value is None else getattr(value, "pk", value)
        if formset.formset.model is Membership:
            index = len(formset.formset.initial_forms)
            data[f"{prefix}-TOTAL_FORMS"] = index + 1
            data[f"{prefix}-{index}-username"] = "jo"
            data[f"{prefix}-{index}-role"] = "ml_engineer"
    response = client.post(f"/admin/annotation/project/{project.pk}/change/", data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert _fresh(get_user_model().objects.get(username="jo")).is_staff


def test_a_reviewer_is_added_like_any_role_and_sees_evaluation_not_training(lead_client, project):
    """The reviewer role (QA or red-team lead) through the command and the API: staff with its group, the
    project's Checkpoints page open, the lead's dashboard closed (every door per role: test_authorization_matrix)."""
    UserFactory(username="rex")
    call_command("add_members", "rex", project=project.name, role="reviewer")
    rex = get_user_model().objects.get(username="rex")
    assert _groups(rex) == {"reviewer"} and _fresh(rex).is_staff and _admin_index(rex) == 200
    UserFactory(username="rita")
    response = lead_client.post(f"/api/v1/projects/{project.pk}/members/", {"username": "rita", "role": "reviewer"})
    assert response.status_code in (200, 201), response.json()
    client = Client()
    client.force_login(_fresh(rex))
    assert client.get(f"/projects/{project.pk}/checkpoints/").status_code == 200
    assert client.get(f"/api/v1/projects/{project.pk}/leaderboard/").status_code == 200
    assert client.get(f"/lead/projects/{project.pk}/").status_code == 403
