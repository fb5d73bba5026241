"""Leads and ML engineers reach their work in the admin site with nothing but their project role."""

from django.test import Client

from annotation.models import Batch
from tests.factories import BatchFactory


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_adding_a_lead_or_ml_engineer_makes_them_staff_but_not_an_annotator(lead, ml_engineer, annotator):
    for user in (lead, ml_engineer, annotator):
        user.refresh_from_db()
    assert lead.is_staff and ml_engineer.is_staff
    assert not annotator.is_staff
    assert not (lead.is_superuser or ml_engineer.is_superuser)


def test_a_lead_closes_a_batch_and_manages_members_in_the_admin(lead, project):
    batch = BatchFactory(project=project, name="week 1")
    client = admin_client(lead)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/annotation/membership/add/").status_code == 200
    changelist = client.get("/admin/annotation/batch/")
    assert changelist.status_code == 200 and "close" in changelist.content.decode().lower()
    response = client.post(
        "/admin/annotation/batch/", {"action": "close_batches", "_selected_action": [batch.pk]}, follow=True
    )
    assert response.status_code == 200
    batch.refresh_from_db()
    assert batch.status == Batch.Status.CLOSED
    assert client.get("/admin/trainer/trainingrun/start/").status_code == 403  # leads do not start runs


def test_an_ml_engineer_reaches_snapshots_and_the_run_start_form(ml_engineer, project):
    client = admin_client(ml_engineer)
    index = client.get("/admin/").content.decode()
    assert "/admin/rewards/datasetsnapshot/" in index and "/admin/trainer/trainingrun/" in index
    assert client.get("/admin/rewards/datasetsnapshot/").status_code == 200
    assert client.get("/admin/trainer/trainingrun/start/").status_code == 200
    assert client.get("/admin/annotation/membership/add/").status_code == 403  # members are the lead's


def test_an_annotator_never_enters_the_admin(annotator):
    response = admin_client(annotator).get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
