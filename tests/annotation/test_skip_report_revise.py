"""Skip, report (and withdraw), revise within the window, and lease renewal: the annotator API's calls besides the
judgment, as an annotator and a lead meet them (annotation/services/annotator_actions.py). Runs on both databases."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import AnnotationSession, Assignment, Item, ItemReport, Judgment, JudgmentRevision
from annotation.services import member_add
from rewards.services.pairs import preference_pairs
from tests.factories import BatchFactory, ItemFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch(project):
    project.gold_rate = 0
    project.save()
    return BatchFactory(project=project, name="b1")


@pytest.fixture
def items(batch):
    return ItemFactory.create_batch(4, batch=batch)


def _other_annotator(project, name: str = "ann2") -> APIClient:
    """Another annotator of the project, with their own token."""
    user = UserFactory(username=name)
    member_add(project=project, username=name, role="annotator")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def lease(client, project) -> dict:
    session = client.post(f"/api/v1/projects/{project.pk}/sessions/").json()
    response = client.get(f"/api/v1/sessions/{session['id']}/next/")
    assert response.status_code == 200, response.content
    return response.json()


def served_items(client, project) -> list[int]:
    """Judges everything the annotator is served until nothing is left: the items, in order."""
    session = client.post(f"/api/v1/projects/{project.pk}/sessions/").json()
    seen = []
    while (response := client.get(f"/api/v1/sessions/{session['id']}/next/")).status_code == 200:
        assignment_id = response.json()["assignment_id"]
        seen.append(Assignment.objects.get(pk=assignment_id).item_id)
        judged = client.post(f"/api/v1/assignments/{assignment_id}/judgment/", {"choice": "left"}, format="json")
        assert judged.status_code == 201
    assert response.status_code == 204
    return seen


def post(client, path: str, body: dict | None = None):
    return client.post(path, body or {}, format="json")


# --- Skip ---------------------------------------------------------------------------------------------------------


def test_a_skipped_item_goes_back_to_the_pool_at_once_and_never_to_the_skipper(annotator_client, project, batch, items):
    project.overlap = 1  # one place per item: another annotator gets it only if the skip freed it
    project.save()
    first = lease(annotator_client, project)
    skipped = post(annotator_client, f"/api/v1/assignments/{first['assignment_id']}/skip/", {"reason": "unsure"})
    assert skipped.status_code == 200 and skipped.json()["skipped_at"]
    row = Assignment.objects.get(pk=first["assignment_id"])
    assert row.skip_reason == "unsure" and row.lease_expires_at <= timezone.now()

    # The skipper is served the other three and then nothing; the skipped item was never among them.
    rest = served_items(annotator_client, project)
    assert len(rest) == 3 and row.item_id not in rest
    # Someone else gets it straight away, with no lease to wait out.
    assert served_items(_other_annotator(project), project) == [row.item_id]


def test_a_skip_is_answered_once_refused_after_a_judgment_and_ends_the_lease(annotator_client, project, batch, items):
    first = lease(annotator_client, project)
    path = f"/api/v1/assignments/{first['assignment_id']}/skip/"
    once, twice = post(annotator_client, path), post(annotator_client, path, {"reason": "again"})
    assert once.status_code == twice.status_code == 200 and once.json() == twice.json()
    renew = post(annotator_client, f"/api/v1/assignments/{first['assignment_id']}/renew/")
    assert renew.status_code == 410 and renew.json()["code"] == "skipped"
    late = post(annotator_client, f"/api/v1/assignments/{first['assignment_id']}/judgment/", {"choice": "left"})
    assert late.status_code == 410
    second = lease(annotator_client, project)
    assert post(annotator_client, f"/api/v1/assignments/{second['assignment_id']}/judgment/", {"choice": "tie"})
    refused = post(annotator_client, f"/api/v1/assignments/{second['assignment_id']}/skip/")
    assert refused.status_code == 409 and refused.json()["code"] == "already_judged"
    too_long = post(annotator_client, f"/api/v1/assignments/{second['assignment_id']}/skip/", {"reason": "x" * 501})
    assert too_long.status_code == 400 and too_long.json()["code"] == "invalid"


def test_skips_are_listed_for_the_lead_and_hidden_from_others(annotator_client, lead, project, batch, items):
    first = lease(annotator_client, project)
    post(annotator_client, f"/api/v1/assignments/{first['assignment_id']}/skip/", {"reason": "needs code knowledge"})
    page = Client()
    page.force_login(lead)
    listed = page.get("/admin/annotation/assignment/?skipped=yes").content.decode()
    assert "needs code knowledge" in listed and "1 result" in listed
    assert "needs code knowledge" not in page.get("/admin/annotation/assignment/?skipped=no").content.decode()
    stranger = _other_annotator(project, "ann3")
    assert post(stranger, f"/api/v1/assignments/{first['assignment_id']}/skip/").status_code == 404


# --- Report and withdraw -----------------------------------------------------------------------------------------


def test_a_report_skips_the_item_and_reaches_the_lead_who_withdraws_it(
    annotator_client, lead, ml_engineer, project, batch, items
):
    first = lease(annotator_client, project)
    path = f"/api/v1/assignments/{first['assignment_id']}/report/"
    assert post(annotator_client, path, {"kind": "spam"}).status_code == 400
    reported = post(annotator_client, path, {"kind": "broken", "note": "response B is cut off"})
    assert reported.status_code == 201 and reported.json()["skipped"] is True
    assert post(annotator_client, path, {"kind": "harmful"}).status_code == 200  # one report per assignment
    assert post(_other_annotator(project, "ann4"), path, {"kind": "broken"}).status_code == 404
    report = ItemReport.objects.get()
    assert report.kind == "broken" and report.assignment.skip_reason.startswith("Reported: Broken")

    lead_page, ml_page = Client(), Client()
    lead_page.force_login(lead)
    ml_page.force_login(ml_engineer)
    assert "response B is cut off" in lead_page.get("/admin/annotation/itemreport/").content.decode()
    # An ML engineer sees items but does not manage batches: the report is listed, the withdrawal is not offered.
    ml_list = ml_page.get("/admin/annotation/itemreport/").content.decode()
    assert "response B is cut off" in ml_list and "withdraw_items" not in ml_list
    action = {"action": "withdraw_items", "_selected_action": [report.pk]}
    lead_page.post("/admin/annotation/itemreport/", action)
    assert Item.objects.get(pk=report.item_id).withdrawn_at is not None

    # Nobody is served it any more, and the exports leave it out with the reason.
    everyone = served_items(_other_annotator(project, "ann5"), project)
    assert report.item_id not in everyone and len(everyone) == 3
    _, excluded = preference_pairs(batch_ids=[batch.pk])
    assert {"item_pk": report.item_id, "reason": "withdrawn"}.items() <= next(
        e for e in excluded if e["item_pk"] == report.item_id
    ).items()


def test_withdrawing_ends_open_leases_on_the_item(annotator_client, lead, project, batch, items):
    from annotation.services.annotator_actions import items_withdraw

    first = lease(annotator_client, project)
    item = Assignment.objects.get(pk=first["assignment_id"]).item
    assert items_withdraw(items=Item.objects.filter(pk=item.pk)) == 1
    late = post(annotator_client, f"/api/v1/assignments/{first['assignment_id']}/judgment/", {"choice": "left"})
    assert late.status_code == 410
    renew = post(annotator_client, f"/api/v1/assignments/{first['assignment_id']}/renew/")
    assert renew.status_code == 410 and renew.json()["code"] == "item_withdrawn"


# --- Revise ------------------------------------------------------------------------------------------------------


def _judged(client, project, choice="left") -> dict:
    first = lease(client, project)
    response = post(client, f"/api/v1/assignments/{first['assignment_id']}/judgment/", {"choice": choice})
    assert response.status_code == 201
    return response.json()


def test_a_revision_within_the_window_changes_the_judgment_in_place(annotator_client, project, batch, items):
    judged = _judged(annotator_client, project, "left")
    before = Judgment.objects.get(pk=judged["id"])
    item_count = Item.objects.get(pk=before.item_id).judgment_count
    tasks = AnnotationSession.objects.get().tasks_done
    path = f"/api/v1/judgments/{judged['id']}/revision/"
    revised = post(annotator_client, path, {"choice": "right", "justification": "misread"})
    assert revised.status_code == 201
    body = revised.json()
    assert body["id"] == judged["id"] and body["choice"] == "right" and body["revisions"] == 1
    after = Judgment.objects.get(pk=judged["id"])
    assert after.choice != before.choice and after.justification == "misread" and after.revised_at
    assert Judgment.objects.count() == 1
    assert Item.objects.get(pk=before.item_id).judgment_count == item_count
    assert AnnotationSession.objects.get().tasks_done == tasks
    revision = JudgmentRevision.objects.get()
    assert (revision.old_choice, revision.new_choice) == (before.choice, after.choice)
    # The same answer again changes nothing; the old one is kept only once.
    same = post(annotator_client, path, {"choice": "right", "justification": "misread"})
    assert same.status_code == 200 and same.json()["revised"] is False
    assert JudgmentRevision.objects.count() == 1
    assert post(_other_annotator(project, "ann6"), path, {"choice": "tie"}).status_code == 404
    assert post(annotator_client, path, {"choice": "sideways"}).status_code == 400


def test_a_revision_is_refused_after_the_window(annotator_client, project, batch, items):
    judged = _judged(annotator_client, project)
    Judgment.objects.filter(pk=judged["id"]).update(created_at=timezone.now() - timedelta(seconds=121))
    late = post(annotator_client, f"/api/v1/judgments/{judged['id']}/revision/", {"choice": "right"})
    assert late.status_code == 410 and late.json()["code"] == "revise_window_closed"
    assert "120 seconds" in late.json()["detail"]
    assert Judgment.objects.get(pk=judged["id"]).revised_at is None


def test_a_revision_is_refused_once_the_item_is_complete(annotator_client, project, batch, items):
    project.overlap = 1
    project.max_overlap = 1
    project.save()
    judged = _judged(annotator_client, project)
    refused = post(annotator_client, f"/api/v1/judgments/{judged['id']}/revision/", {"choice": "right"})
    assert refused.status_code == 409 and refused.json()["code"] == "item_complete"


def test_the_window_is_a_project_setting_the_session_reports(annotator_client, project, batch, items):
    project.revise_window_seconds = 0
    project.save()
    session = annotator_client.post(f"/api/v1/projects/{project.pk}/sessions/").json()
    assert session["revise_window_seconds"] == 0
    judged = _judged(annotator_client, project)
    Judgment.objects.filter(pk=judged["id"]).update(created_at=timezone.now() - timedelta(seconds=1))
    refused = post(annotator_client, f"/api/v1/judgments/{judged['id']}/revision/", {"choice": "right"})
    assert refused.status_code == 410


# --- Renew ---------------------------------------------------------------------------------------------------------


def test_renew_extends_a_live_lease(annotator_client, project, batch, items):
    first = lease(annotator_client, project)
    Assignment.objects.filter(pk=first["assignment_id"]).update(lease_expires_at=timezone.now() + timedelta(minutes=1))
    renewed = post(annotator_client, f"/api/v1/assignments/{first['assignment_id']}/renew/")
    assert renewed.status_code == 200 and renewed.json()["relet"] is False
    expires = Assignment.objects.get(pk=first["assignment_id"]).lease_expires_at
    assert expires > timezone.now() + timedelta(minutes=project.lease_minutes - 1)
    assert (
        post(_other_annotator(project, "ann7"), f"/api/v1/assignments/{first['assignment_id']}/renew/").status_code
        == 404
    )


def test_a_pick_after_a_lapsed_lease_is_kept_while_the_item_is_free(annotator_client, project, batch, items):
    first = lease(annotator_client, project)
    path = f"/api/v1/assignments/{first['assignment_id']}"
    Assignment.objects.filter(pk=first["assignment_id"]).update(lease_expires_at=timezone.now() - timedelta(minutes=1))
    assert post(annotator_client, f"{path}/judgment/", {"choice": "left"}).json()["code"] == "lease_expired"
    relet = post(annotator_client, f"{path}/renew/")
    assert relet.status_code == 200 and relet.json()["relet"] is True
    assert post(annotator_client, f"{path}/judgment/", {"choice": "left"}).status_code == 201
    done = post(annotator_client, f"{path}/renew/")
    assert done.status_code == 409 and done.json()["code"] == "already_judged"


def test_a_lapsed_lease_whose_item_was_taken_says_the_pick_is_lost(annotator_client, project, batch, items):
    project.overlap = 1
    project.save()
    first = lease(annotator_client, project)
    row = Assignment.objects.get(pk=first["assignment_id"])
    Assignment.objects.filter(pk=row.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    other = _other_annotator(project, "ann8")
    other_session = other.post(f"/api/v1/projects/{project.pk}/sessions/").json()
    # The other annotator leases items until they hold the lapsed one.
    while True:
        got = other.get(f"/api/v1/sessions/{other_session['id']}/next/").json()
        if Assignment.objects.get(pk=got["assignment_id"]).item_id == row.item_id:
            break
        post(other, f"/api/v1/assignments/{got['assignment_id']}/judgment/", {"choice": "left"})
    lost = post(annotator_client, f"/api/v1/assignments/{row.pk}/renew/")
    assert lost.status_code == 410 and lost.json()["code"] == "lease_lost"
    assert "could not be kept" in lost.json()["detail"]
