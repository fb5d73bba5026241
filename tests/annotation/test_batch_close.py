"""Closing a batch, four ways (service, API, admin action and change form, management command): a closed batch
serves nothing and takes no judgment, closing twice is harmless, and batch_closed is sent once, after which rewards
snapshots the batch on commit."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import Assignment, Batch
from annotation.services.batches import batch_close
from annotation.signals import batch_closed
from tests.factories import BatchFactory, ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch(project):
    batch = BatchFactory(project=project, name="week 1")
    ItemFactory.create_batch(3, batch=batch)
    return batch


@pytest.fixture
def sent():
    calls = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    batch_closed.connect(receiver)
    yield calls
    batch_closed.disconnect(receiver)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def close_url(batch_id: int) -> str:
    return f"/api/v1/batches/{batch_id}/close/"


def test_service_closes_once_and_signals_once(batch, lead, sent):
    closed, changed = batch_close(batch=batch, user=lead)
    assert changed and closed.status == Batch.Status.CLOSED and closed.closed_at is not None
    assert [(c["batch"].pk, c["user"]) for c in sent] == [(batch.pk, lead)]
    again, changed = batch_close(batch=batch, user=lead)
    assert not changed and again.closed_at == closed.closed_at
    assert len(sent) == 1


def test_a_closed_batch_serves_nothing_and_refuses_judgments_on_open_leases(batch, project, annotator_client):
    project.gold_rate = 0
    project.save()
    session = annotator_client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    leased = annotator_client.get(f"/api/v1/sessions/{session}/next/").json()["assignment_id"]
    batch_close(batch=batch)
    late = annotator_client.post(f"/api/v1/assignments/{leased}/judgment/", {"choice": "left"}, format="json")
    assert late.status_code == 410 and late.json()["code"] == "batch_closed"
    assert annotator_client.get(f"/api/v1/sessions/{session}/next/").status_code == 204
    assert Assignment.objects.count() == 1


def test_snapshot_is_enqueued_after_the_close_commits(batch, lead, django_capture_on_commit_callbacks, monkeypatch):
    from rewards import tasks

    enqueued = []
    # Sent through the task outbox (core.outbox), which calls apply_async once the transaction has committed.
    monkeypatch.setattr(tasks.snapshot_batch_task, "apply_async", lambda args, kwargs, **opts: enqueued.append(*args))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batch_close(batch=batch, user=lead)
    assert enqueued == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert enqueued == [batch.pk]


def test_api_closes_for_the_lead_and_is_idempotent(batch, lead_client, sent):
    response = lead_client.post(close_url(batch.pk))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == batch.pk and body["status"] == "closed" and body["closed_at"]
    assert body["project"] == batch.project_id and body["name"] == "week 1" and body["criteria_version"] == 1
    again = lead_client.post(close_url(batch.pk))
    assert again.status_code == 200 and again.json() == body
    assert len(sent) == 1


def test_api_refuses_everyone_else(batch, annotator_client, ml_engineer_client, stranger_client, anon_client):
    for client in (annotator_client, ml_engineer_client):
        response = client.post(close_url(batch.pk))
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    # No role in the project: the batch reads as missing (no existence oracle).
    assert stranger_client.post(close_url(batch.pk)).json() == stranger_client.post(close_url(999_999)).json()
    assert anon_client.post(close_url(batch.pk)).status_code in (401, 403)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.OPEN


def test_api_404_and_a_lead_of_another_project(batch, lead_client):
    assert lead_client.post(close_url(999_999)).status_code == 404
    elsewhere = BatchFactory(project=ProjectFactory(name="Elsewhere"))
    assert lead_client.post(close_url(elsewhere.pk)).status_code == 404
    assert lead_client.get(close_url(batch.pk)).status_code == 405


def test_admin_action_closes_the_selected_batches(batch, project, admin_client, sent):
    other = BatchFactory(project=project, name="week 2")
    already = BatchFactory(project=project, name="week 0")
    batch_close(batch=already)
    sent.clear()
    url = reverse("admin:annotation_batch_changelist")
    response = admin_client.post(
        url, {"action": "close_batches", "_selected_action": [batch.pk, other.pk, already.pk]}, follow=True
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "Closed 2 batch(es)" in text and "1 batch(es) were already closed" in text
    assert set(Batch.objects.filter(status="closed").values_list("name", flat=True)) == {"week 0", "week 1", "week 2"}
    assert sorted(c["batch"].name for c in sent) == ["week 1", "week 2"]


def test_admin_change_form_status_closes_through_the_service(batch, admin_client, sent):
    url = reverse("admin:annotation_batch_change", args=[batch.pk])
    response = admin_client.post(url, {"project": batch.project_id, "name": "week 1 (final)", "status": "closed"})
    assert response.status_code == 302
    batch.refresh_from_db()
    assert (batch.name, batch.status) == ("week 1 (final)", "closed") and batch.closed_at is not None
    assert [c["batch"].pk for c in sent] == [batch.pk]
    # Reopening clears closed_at; it sends nothing.
    admin_client.post(url, {"project": batch.project_id, "name": "week 1 (final)", "status": "open"})
    batch.refresh_from_db()
    assert (batch.status, batch.closed_at) == ("open", None) and len(sent) == 1


def test_command_closes_by_project_and_batch_name(batch, sent):
    out = StringIO()
    call_command("close_batch", "--project", "Demo", "--batch", "week 1", stdout=out)
    assert "Closed batch week 1 of Demo" in out.getvalue()
    batch.refresh_from_db()
    assert batch.status == "closed" and len(sent) == 1
    out = StringIO()
    call_command("close_batch", "--project", "Demo", "--batch", "week 1", stdout=out)
    assert "already closed" in out.getvalue() and len(sent) == 1


def test_command_refuses_unknown_names(batch):
    with pytest.raises(CommandError, match="No batch named 'week 9'"):
        call_command("close_batch", "--project", "Demo", "--batch", "week 9")
    with pytest.raises(CommandError, match="project named 'Nope'"):
        call_command("close_batch", "--project", "Nope", "--batch", "week 1")


@pytest.mark.parametrize("kind", [Batch.Kind.DEMONSTRATION, Batch.Kind.LABELLED])
def test_closing_a_batch_nobody_judges_asks_for_no_agreement_snapshot(project, lead, kind):
    from core.models import OutboxMessage

    batch = BatchFactory(project=project, name=f"not judged {kind}", kind=kind)
    closed, changed = batch_close(batch=batch, user=lead)
    assert changed and closed.status == Batch.Status.CLOSED
    assert not OutboxMessage.objects.filter(task="rewards.snapshot_batch").exists()
    judged = BatchFactory(project=project, name="judged")
    batch_close(batch=judged, user=lead)
    assert OutboxMessage.objects.filter(task="rewards.snapshot_batch", args=[judged.pk]).count() == 1
