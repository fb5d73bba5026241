"""Project membership: a lead adds people through the API or the add_members command; roles mirror Django groups."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Membership
from tests.factories import ProjectFactory, UserFactory


def members_url(project) -> str:
    return f"/api/v1/projects/{project.pk}/members/"


def role_of(project, username: str) -> str | None:
    return Membership.objects.filter(project=project, user__username=username).values_list("role", flat=True).first()


def test_lead_adds_a_member(project, lead_client):
    alice = UserFactory(username="alice")
    response = lead_client.post(members_url(project), {"username": "alice", "role": "annotator"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"username": "alice", "role": "annotator", "project": project.pk}
    assert role_of(project, "alice") == "annotator"
    assert alice.groups.filter(name="annotator").exists()


def test_adding_the_same_member_again_is_200_and_changes_nothing(project, lead_client):
    UserFactory(username="alice")
    lead_client.post(members_url(project), {"username": "alice", "role": "annotator"}, format="json")
    response = lead_client.post(members_url(project), {"username": "alice", "role": "annotator"}, format="json")
    assert response.status_code == 200
    assert Membership.objects.filter(project=project, user__username="alice").count() == 1


def test_adding_a_member_with_another_role_changes_their_role(project, lead_client):
    bob = UserFactory(username="bob")
    lead_client.post(members_url(project), {"username": "bob", "role": "annotator"}, format="json")
    response = lead_client.post(members_url(project), {"username": "bob", "role": "ml_engineer"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "ml_engineer"
    assert role_of(project, "bob") == "ml_engineer"
    assert bob.groups.filter(name="ml_engineer").exists()


def test_membership_is_per_project(project, lead_client):
    UserFactory(username="alice")
    other = ProjectFactory(name="Other")
    lead_client.post(members_url(project), {"username": "alice", "role": "annotator"}, format="json")
    assert role_of(other, "alice") is None


def test_unknown_user_is_400(project, lead_client):
    response = lead_client.post(members_url(project), {"username": "nobody", "role": "annotator"}, format="json")
    assert response.status_code == 400
    assert "No user named 'nobody'" in response.json()["username"][0]
    assert not Membership.objects.filter(user__username="nobody").exists()


def test_unknown_role_is_400(project, lead_client):
    UserFactory(username="alice")
    response = lead_client.post(members_url(project), {"username": "alice", "role": "admin"}, format="json")
    assert response.status_code == 400
    assert "role" in response.json()
    assert role_of(project, "alice") is None


def test_unknown_project_is_404(lead_client):
    UserFactory(username="alice")
    response = lead_client.post("/api/v1/projects/999999/members/", {"username": "alice", "role": "annotator"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("who", "status"), [("annotator_client", 403), ("ml_engineer_client", 403), ("stranger_client", 404)]
)
def test_only_leads_may_add_members(who, status, request, project):
    client = request.getfixturevalue(who)
    UserFactory(username="alice")
    response = client.post(members_url(project), {"username": "alice", "role": "lead"}, format="json")
    assert response.status_code == status  # no role in the project: as if it did not exist
    assert role_of(project, "alice") is None


def test_an_annotator_cannot_promote_themselves(project, annotator, annotator_client):
    response = annotator_client.post(members_url(project), {"username": annotator.username, "role": "lead"})
    assert response.status_code == 403
    assert role_of(project, annotator.username) == "annotator"


def test_anonymous_cannot_add_members(project, anon_client):
    UserFactory(username="alice")
    response = anon_client.post(members_url(project), {"username": "alice", "role": "annotator"}, format="json")
    assert response.status_code in (401, 403)
    assert role_of(project, "alice") is None


def test_a_lead_of_another_project_gets_404(lead_client):
    other = ProjectFactory(name="Other")
    UserFactory(username="alice")
    response = lead_client.post(members_url(other), {"username": "alice", "role": "annotator"}, format="json")
    assert response.status_code == 404


def test_superuser_acts_as_lead(project, superuser):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(superuser)
    UserFactory(username="alice")
    response = client.post(members_url(project), {"username": "alice", "role": "lead"}, format="json")
    assert response.status_code == 201


def test_project_list_shows_my_projects_and_role(project, annotator_client):
    ProjectFactory(name="Not mine")
    response = annotator_client.get("/api/v1/projects/")
    assert response.status_code == 200
    assert [(p["name"], p["role"]) for p in response.json()] == [("Demo", "annotator")]


# --- The add_members command ------------------------------------------------------------------


def test_add_members_command(project):
    UserFactory(username="carol")
    UserFactory(username="dave")
    out = StringIO()
    call_command("add_members", "carol", "dave", "--project", "Demo", "--role", "annotator", stdout=out)
    assert "Added carol as annotator on Demo." in out.getvalue()
    assert role_of(project, "carol") == role_of(project, "dave") == "annotator"

    out = StringIO()
    call_command("add_members", "carol", "--project", "Demo", "--role", "lead", stdout=out)
    assert "Updated carol as lead on Demo." in out.getvalue()
    assert role_of(project, "carol") == "lead"


def test_add_members_command_reports_unknown_users_and_adds_the_rest(project):
    UserFactory(username="carol")
    out = StringIO()
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("add_members", "ghost", "carol", "--project", "Demo", "--role", "annotator", stdout=out)
    assert role_of(project, "carol") == "annotator"
    assert not Membership.objects.filter(user__username="ghost").exists()


def test_add_members_command_unknown_project(db):
    UserFactory(username="carol")
    with pytest.raises(CommandError, match="No project named 'Nope'"):
        call_command("add_members", "carol", "--project", "Nope", "--role", "annotator")


def test_add_members_command_unknown_role(project):
    UserFactory(username="carol")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("add_members", "carol", "--project", "Demo", "--role", "boss")
