"""Qualification (annotation.services.qualification): a new annotator answers the project's qualification set of gold
items before any live item, through the annotator API; the attempt is scored and stored, leads see and reset it.

The tests run on SQLite and, with DATABASE_URL set to PostgreSQL, through tandem_lease_next (annotator_loop_v4.sql):
the fast path's statement must send a not-yet-qualified annotator to the Python steps.
"""

import csv
import io
import os

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import Assignment, Batch, Judgment, QualificationAttempt
from tests.factories import BatchFactory, ItemFactory, UserFactory

pytestmark = pytest.mark.django_db

REQUIRE_SERVICES = os.environ.get("TANDEM_REQUIRE_SERVICES") == "1"
SIZE = 4  # threshold 0.75: 3 of 4 pass


@pytest.fixture
def world(project, annotator, lead):
    """The root project, requiring qualification: 8 qualification items (two attempts' worth), a live batch of
    regular items and a live gold item."""
    project.qualification_required = True
    project.qualification_size = SIZE
    project.qualification_threshold = 0.75
    project.gold_rate = 0.5
    project.save()
    qualification = BatchFactory(project=project, name="qualification", kind=Batch.Kind.QUALIFICATION)
    for n in range(8):
        ItemFactory(batch=qualification, gold=["a", "b", "tie"][n % 3])
    live = BatchFactory(project=project, name="live")
    for _ in range(5):
        ItemFactory(batch=live)
    ItemFactory(batch=live, gold="a")
    return {"project": project, "qualification": qualification, "live": live}


def client_for(user) -> APIClient:
    from rest_framework.authtoken.models import Token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def start(client, project) -> int:
    response = client.post(f"/api/v1/projects/{project.pk}/sessions/")
    assert response.status_code in (200, 201), response.content
    return response.json()["id"]


def answer_for(assignment_id: str, *, right: bool) -> str:
    """The left/right/tie answer the gold says (right) or one it does not (wrong), as a test that knows the sides."""
    assignment = Assignment.objects.select_related("item").get(pk=assignment_id)
    gold = assignment.item.gold
    if gold == "tie":
        return "tie" if right else "left"
    gold_side = "left" if (gold == "a") == assignment.left_is_a else "right"
    if right:
        return gold_side
    return "right" if gold_side == "left" else "left"


def judge(client, assignment_id: str, choice: str):
    response = client.post(f"/api/v1/assignments/{assignment_id}/judgment/", {"choice": choice}, format="json")
    assert response.status_code == 201, response.content
    return response


def qualify(client, session_id: int, answers: list[bool]) -> list[dict]:
    """Takes the qualification: one item per answer (right or wrong); returns the bodies served."""
    served = []
    for n, right in enumerate(answers):
        body = client.get(f"/api/v1/sessions/{session_id}/next/").json()
        assert body["qualification"] == {"answered": n, "size": SIZE}, body
        again = client.get(f"/api/v1/sessions/{session_id}/next/").json()  # a reload: the same item
        assert again["assignment_id"] == body["assignment_id"]
        served.append(body)
        judge(client, body["assignment_id"], answer_for(body["assignment_id"], right=right))
    return served


def item_batch(assignment_id: str) -> int:
    return Assignment.objects.get(pk=assignment_id).item.batch_id


def test_passing_the_qualification_leads_to_live_items(world, annotator):
    client = client_for(annotator)
    session_id = start(client, world["project"])
    served = qualify(client, session_id, [True, True, False, True])
    assert {item_batch(b["assignment_id"]) for b in served} == {world["qualification"].pk}
    # Stored as normal judgments of the qualification batch, scored against the gold.
    judgments = Judgment.objects.filter(annotator=annotator, batch=world["qualification"])
    assert judgments.count() == SIZE and all(j.is_gold for j in judgments)
    assert sorted(j.gold_correct for j in judgments) == [False, True, True, True]

    live = client.get(f"/api/v1/sessions/{session_id}/next/")
    assert live.status_code == 200
    assert "qualification" not in live.json()
    assert item_batch(live.json()["assignment_id"]) == world["live"].pk
    attempt = QualificationAttempt.objects.get(annotator=annotator)
    assert (attempt.passed, attempt.answered, attempt.correct, attempt.score) == (True, SIZE, 3, 0.75)
    assert attempt.finished_at is not None and attempt.criteria_version == 1

    # From here on only live items, gold included, and never a qualification item.
    for _ in range(6):
        body = client.get(f"/api/v1/sessions/{session_id}/next/")
        if body.status_code == 204:
            break
        assert "qualification" not in body.json()
        assert item_batch(body.json()["assignment_id"]) == world["live"].pk
        judge(client, body.json()["assignment_id"], "left")
    later = Assignment.objects.filter(annotator=annotator, leased_at__gt=attempt.finished_at)
    assert later.exists() and not later.filter(item__batch=world["qualification"]).exists()


def test_failing_answers_not_qualified_to_every_later_next(world, annotator):
    client = client_for(annotator)
    session_id = start(client, world["project"])
    qualify(client, session_id, [True, False, True, False])
    for _ in range(2):
        refused = client.get(f"/api/v1/sessions/{session_id}/next/")
        assert refused.status_code == 403
        assert refused.json()["code"] == "not_qualified"
        assert "score 2 of 4, needed 3" in refused.json()["detail"]
        assert "ask your lead" in refused.json()["detail"]
    # The same answer from the DRF view as from the fast path.
    with override_settings(TANDEM_LOOP_FAST_PATH=False):
        drf = client.get(f"/api/v1/sessions/{session_id}/next/")
    assert (drf.status_code, drf.json()) == (refused.status_code, refused.json())
    # A new session changes nothing.
    assert client.post(f"/api/v1/projects/{world['project'].pk}/sessions/").status_code == 200
    attempt = QualificationAttempt.objects.get(annotator=annotator)
    assert (attempt.passed, attempt.correct, attempt.score) == (False, 2, 0.5)
    assert not Assignment.objects.filter(annotator=annotator, item__batch=world["live"]).exists()


def test_no_live_item_before_passing_even_with_gold_drawn_every_time(world, annotator):
    world["project"].gold_rate = 1.0
    world["project"].save()
    client = client_for(annotator)
    session_id = start(client, world["project"])
    for _ in range(SIZE - 1):
        body = client.get(f"/api/v1/sessions/{session_id}/next/").json()
        assert item_batch(body["assignment_id"]) == world["qualification"].pk
        judge(client, body["assignment_id"], "left")
    assert not Assignment.objects.filter(annotator=annotator, item__batch=world["live"]).exists()
    assert QualificationAttempt.objects.get(annotator=annotator).passed is None


def test_a_skip_counts_as_answered_and_not_correct(world, annotator):
    client = client_for(annotator)
    session_id = start(client, world["project"])
    for n in range(SIZE):
        body = client.get(f"/api/v1/sessions/{session_id}/next/").json()
        assert body["qualification"] == {"answered": n, "size": SIZE}
        if n < 2:
            skipped = client.post(f"/api/v1/assignments/{body['assignment_id']}/skip/", {}, format="json")
            assert skipped.status_code == 200
        else:
            judge(client, body["assignment_id"], answer_for(body["assignment_id"], right=True))
    refused = client.get(f"/api/v1/sessions/{session_id}/next/")
    assert refused.status_code == 403 and "score 2 of 4, needed 3" in refused.json()["detail"]
    attempt = QualificationAttempt.objects.get(annotator=annotator)
    assert (attempt.answered, attempt.correct, attempt.passed) == (SIZE, 2, False)


def test_a_lead_reset_allows_another_attempt_on_unseen_items(world, annotator, lead, ml_engineer):
    client = client_for(annotator)
    session_id = start(client, world["project"])
    first = qualify(client, session_id, [False, False, False, True])
    assert client.get(f"/api/v1/sessions/{session_id}/next/").status_code == 403
    url = f"/api/v1/projects/{world['project'].pk}/annotators/{annotator.pk}/qualification/reset/"
    assert client.post(url).status_code == 403  # the annotator
    assert client_for(ml_engineer).post(url).status_code == 403
    assert client_for(UserFactory(username="outsider")).post(url).status_code == 404
    nobody = UserFactory(username="nobody")
    missing = f"/api/v1/projects/{world['project'].pk}/annotators/{nobody.pk}/qualification/reset/"
    assert client_for(lead).post(missing).status_code == 404
    reset = client_for(lead).post(url)
    assert reset.status_code == 200 and reset.json() == {"annotator_id": annotator.pk, "reset": 1}

    second = qualify(client, session_id, [True, True, True, True])
    seen_first = {Assignment.objects.get(pk=b["assignment_id"]).item_id for b in first}
    seen_second = {Assignment.objects.get(pk=b["assignment_id"]).item_id for b in second}
    assert not seen_first & seen_second
    assert item_batch(client.get(f"/api/v1/sessions/{session_id}/next/").json()["assignment_id"]) == world["live"].pk
    attempts = QualificationAttempt.objects.filter(annotator=annotator).order_by("started_at")
    assert [(a.passed, a.reset_at is not None) for a in attempts] == [(False, True), (True, False)]


def test_a_reset_after_passing_asks_for_qualification_again(world, annotator, lead):
    client = client_for(annotator)
    session_id = start(client, world["project"])
    qualify(client, session_id, [True] * SIZE)
    live = client.get(f"/api/v1/sessions/{session_id}/next/").json()
    assert item_batch(live["assignment_id"]) == world["live"].pk
    client_for(lead).post(f"/api/v1/projects/{world['project'].pk}/annotators/{annotator.pk}/qualification/reset/")
    body = client.get(f"/api/v1/sessions/{session_id}/next/").json()
    assert body["qualification"] == {"answered": 0, "size": SIZE}
    # The live lease ended at the reset's first `next`: one open lease per session.
    assert Assignment.objects.get(pk=live["assignment_id"]).lease_expires_at <= timezone.now()


def test_without_qualification_items_the_annotator_waits(project, annotator):
    project.qualification_required = True
    project.save()
    ItemFactory(batch=BatchFactory(project=project, name="live"))
    client = client_for(annotator)
    session_id = start(client, project)
    assert client.get(f"/api/v1/sessions/{session_id}/next/").status_code == 204
    assert not QualificationAttempt.objects.exists()


def test_qualification_items_are_never_live_work(project, annotator):
    """On a project that does not require qualification, its qualification batch is never served, gold or not."""
    project.gold_rate = 1.0
    project.save()
    qualification = BatchFactory(project=project, name="qualification", kind=Batch.Kind.QUALIFICATION)
    for _ in range(3):
        ItemFactory(batch=qualification, gold="a")
        ItemFactory(batch=qualification)
    live = BatchFactory(project=project, name="live")
    ItemFactory(batch=live)
    ItemFactory(batch=live, gold="b")
    client = client_for(annotator)
    session_id = start(client, project)
    served = []
    while (body := client.get(f"/api/v1/sessions/{session_id}/next/")).status_code == 200:
        served.append(item_batch(body.json()["assignment_id"]))
        assert "qualification" not in body.json()
        judge(client, body.json()["assignment_id"], "left")
    assert served and set(served) == {live.pk}


def test_a_closed_qualification_batch_is_not_training_data(world):
    from rewards.selectors import closed_batches

    Batch.objects.filter(pk__in=[world["qualification"].pk, world["live"].pk]).update(status=Batch.Status.CLOSED)
    assert [b.pk for b in closed_batches(project=world["project"])] == [world["live"].pk]
    assert [b.pk for b in closed_batches(project=world["project"], include_evaluation=True)] == [world["live"].pk]


# --- Leads: the list, the page, the admin ----------------------------------------------------------------------


def test_the_lead_api_lists_attempts_as_json_and_csv(world, annotator, lead, ml_engineer):
    client = client_for(annotator)
    session_id = start(client, world["project"])
    qualify(client, session_id, [True, True, True, False])
    url = f"/api/v1/projects/{world['project'].pk}/qualification/"
    assert client.get(url).status_code == 403
    assert client_for(ml_engineer).get(url).status_code == 403
    assert client_for(UserFactory(username="outsider")).get(url).status_code == 404
    rows = client_for(lead).get(url).json()
    assert len(rows) == 1
    assert rows[0] | {"started_at": None} == rows[0] | {
        "annotator_id": annotator.pk,
        "username": "ann",
        "state": "in_progress",
        "answered": 3,  # counted at the last `next`; the fourth judgment is scored at the next one
        "size": SIZE,
        "needed": 3,
        "passed": None,
        "started_at": None,
    }
    assert client.get(f"/api/v1/sessions/{session_id}/next/").status_code == 200  # scored: passed, a live item
    rows = client_for(lead).get(url).json()
    assert (rows[0]["state"], rows[0]["correct"], rows[0]["score"], rows[0]["passed"]) == ("passed", 3, 0.75, True)
    response = client_for(lead).get(url + "?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert (table[0]["username"], table[0]["state"], table[0]["correct"]) == ("ann", "passed", "3")


def test_the_lead_page_shows_the_result(world, annotator, lead):
    client = client_for(annotator)
    session_id = start(client, world["project"])
    qualify(client, session_id, [True, False, False, False])
    client.get(f"/api/v1/sessions/{session_id}/next/")
    page = Client()
    page.force_login(lead)
    html = page.get(f"/lead/projects/{world['project'].pk}/annotators/{annotator.pk}/").content.decode()
    section = html.split('id="qualification"')[1].split("</section>")[0]
    assert "Failed" in section and "4 of 4" in section and "0.25" in section
    assert timezone.localtime(QualificationAttempt.objects.get().finished_at).strftime("%Y-%m-%d") in section


def test_the_admin_lists_attempts_and_allows_another(world, annotator, lead, superuser):
    client = client_for(annotator)
    session_id = start(client, world["project"])
    qualify(client, session_id, [False] * SIZE)
    assert client.get(f"/api/v1/sessions/{session_id}/next/").status_code == 403
    attempt = QualificationAttempt.objects.get()
    admin = Client()
    admin.force_login(lead)
    listing = admin.get("/admin/annotation/qualificationattempt/")
    assert listing.status_code == 200 and f"/{attempt.pk}/change/" in listing.content.decode()
    assert admin.get("/admin/annotation/qualificationattempt/add/").status_code == 403
    admin.post(
        "/admin/annotation/qualificationattempt/", {"action": "reset_attempts", "_selected_action": [attempt.pk]}
    )
    attempt.refresh_from_db()
    assert attempt.reset_at is not None and attempt.reset_by == lead
    assert client.get(f"/api/v1/sessions/{session_id}/next/").json()["qualification"]["answered"] == 0


# --- PostgreSQL: the statement of the fast path -----------------------------------------------------------------


def require_postgres() -> None:
    if connection.vendor == "postgresql":
        return
    reason = f"needs tandem_lease_next; the test database is {connection.vendor}"
    if REQUIRE_SERVICES:
        pytest.fail(f"TANDEM_REQUIRE_SERVICES=1 but {reason} (set DATABASE_URL=postgres://…)")
    pytest.skip(reason)


@pytest.mark.postgres
def test_the_fast_path_statement_holds_the_gate(world, annotator):
    require_postgres()
    client = client_for(annotator)
    session_id = start(client, world["project"])

    def lease_status() -> str:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT status FROM tandem_lease_next(%s, %s, now(), 0.0, 0.0, true, gen_random_uuid(), 4, 5, "
                "ARRAY[1, 2, 3]::bigint[])",
                [session_id, annotator.pk],
            )
            return cursor.fetchone()[0]

    assert lease_status() == "qualify"  # before anything is leased: the Python steps answer
    qualify(client, session_id, [True] * SIZE)
    assert lease_status() == "qualify"  # passed only once scored, by the next `next`
    live = client.get(f"/api/v1/sessions/{session_id}/next/").json()
    assert item_batch(live["assignment_id"]) == world["live"].pk
    assert lease_status() == "open"  # qualified: the statement serves, and never a qualification item
    QualificationAttempt.objects.update(reset_at=timezone.now())
    assert lease_status() == "qualify"
