"""The lead's review of demonstrations as leads and others meet it: the queue API, a review (accept, accept with
edits, reject with a reason, once), per-writer figures checked against an independent edit distance and NumPy, the
admin's actions and the lead's page (its forms; tests/e2e/test_demonstration_review.py drives it in Chromium)."""

import statistics
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from django.db import connections
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Demonstration
from annotation.services import member_add
from tests.annotation.demonstration_rows import empty_demonstration_batch, prompt_item, written
from tests.annotation.test_concurrency import require_postgres
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

SECRET_REASON = "reviewer-only-reason-q7x"


@pytest.fixture
def demos(project):
    """Three writers' demonstrations in two demonstration batches of the project."""
    batch = empty_demonstration_batch(project, "demos")
    other_batch = empty_demonstration_batch(project, "demos 2")
    rows = {}
    for n in range(4):
        item = prompt_item(batch, f"p-{n}", prompt=f"Explain thing number {n}.")
        rows[f"ann-{n}"] = written(item, "ann", f"Thing {n} is explained like this, in a few words.", seconds=30 + n)
        rows[f"bob-{n}"] = written(item, "bob", f"Bob's take on thing {n}: it is simple.", seconds=100 + 10 * n)
    item = prompt_item(
        other_batch,
        "m-1",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Name a colour."},
        ],
    )
    rows["cid-0"] = written(item, "cid", "Blue.", seconds=5)
    return rows


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def review(client, demonstration, **body):
    return client.post(reverse("annotation:demonstration-review", args=[demonstration.pk]), body, format="json")


def queue(client, project, **query):
    return client.get(reverse("annotation:demonstration-queue", args=[project.pk]), query)


# --- The queue -----------------------------------------------------------------------------------------------------


def test_the_queue_lists_pending_demonstrations_oldest_first(lead_client, project, demos):
    response = queue(lead_client, project)
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["page"], body["pages"]) == (9, 1, 1)
    assert [row["id"] for row in body["results"]] == sorted(d.pk for d in demos.values())
    first = body["results"][0]
    assert first["writer"] == "ann" and first["status"] == "pending" and first["prompt"] == "Explain thing number 0."
    assert first["text"] == first["final_text"] == demos["ann-0"].text
    assert first["length"] == len(demos["ann-0"].text) and first["seconds"] == 30
    conversation = next(row for row in body["results"] if row["writer"] == "cid")
    assert conversation["messages"][-1] == {"role": "user", "content": "Name a colour."}


def test_the_queue_filters_by_batch_writer_and_status(lead_client, lead, project, demos):
    bob = demos["bob-0"].writer_id
    assert queue(lead_client, project, writer=bob).json()["count"] == 4
    other_batch = demos["cid-0"].batch_id
    assert [r["writer"] for r in queue(lead_client, project, batch=other_batch).json()["results"]] == ["cid"]
    review(lead_client, demos["bob-1"], decision="accept")
    assert queue(lead_client, project, writer=bob).json()["count"] == 3
    accepted = queue(lead_client, project, status="accepted").json()["results"]
    assert [(r["id"], r["reviewed_by"]) for r in accepted] == [(demos["bob-1"].pk, "lead")]
    assert queue(lead_client, project, status="all").json()["count"] == 9
    assert queue(lead_client, project, status="pending", batch="", writer="").json()["count"] == 8  # empty: any
    assert queue(lead_client, project, status="maybe").status_code == 400
    assert (
        queue(
            lead_client,
            project,
            batch=ProjectFactory(name="Else")
            .batches.create(name="x", criteria_version=project.criteria_versions.first())
            .pk,
        ).status_code
        == 404
    )


def test_the_queue_is_paged(lead_client, project):
    batch = empty_demonstration_batch(project)
    for n in range(27):
        written(prompt_item(batch, f"q-{n}", prompt=f"Prompt {n}"), "ann", f"Answer {n} written out.")
    first, second = queue(lead_client, project).json(), queue(lead_client, project, page=2).json()
    assert (first["count"], first["pages"], len(first["results"]), len(second["results"])) == (27, 2, 25, 2)
    assert queue(lead_client, project, page=3).status_code == 404


def test_imported_demonstrations_are_not_in_the_queue(lead_client, project):
    item = prompt_item(empty_demonstration_batch(project), "imp-1", prompt="Imported?")
    Demonstration.objects.create(item=item, batch=item.batch, writer=None, text="Imported answer.", status="accepted")
    assert queue(lead_client, project, status="all").json()["count"] == 0


# --- A review --------------------------------------------------------------------------------------------------------


def test_accept_records_the_reviewer_and_a_retry_is_the_same_answer(lead_client, lead, demos):
    demonstration = demos["ann-0"]
    response = review(lead_client, demonstration, decision="accept", reason="Clear and short.")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["changed"] is True
    assert body["demonstration"]["status"] == "accepted"
    assert (
        body["demonstration"]["reviewed_by"] == "lead" and body["demonstration"]["review_reason"] == "Clear and short."
    )
    demonstration.refresh_from_db()
    assert (demonstration.status, demonstration.reviewed_by_id, demonstration.edited_text) == ("accepted", lead.pk, "")
    assert demonstration.reviewed_at is not None
    again = review(lead_client, demonstration, decision="accept", reason="Clear and short.")
    assert again.status_code == 200 and again.json()["changed"] is False


def test_accept_with_edits_keeps_the_text_as_written(lead_client, demos):
    demonstration = demos["bob-2"]
    edit = "Bob's take on thing 2: it is simple, and here is why."
    body = review(lead_client, demonstration, decision="accept", edited_text=edit).json()["demonstration"]
    assert (body["text"], body["edited_text"], body["final_text"]) == (demonstration.text, edit, edit)
    demonstration.refresh_from_db()
    assert (demonstration.text, demonstration.edited_text, demonstration.final_text) == (
        "Bob's take on thing 2: it is simple.",
        edit,
        edit,
    )


def test_an_edit_that_changes_nothing_is_no_edit(lead_client, demos):
    demonstration = demos["bob-3"]
    review(lead_client, demonstration, decision="accept", edited_text=demonstration.text)
    demonstration.refresh_from_db()
    assert (demonstration.status, demonstration.edited_text) == ("accepted", "")


def test_reject_needs_a_reason(lead_client, demos):
    demonstration = demos["ann-1"]
    for body in ({"decision": "reject"}, {"decision": "reject", "reason": "   "}):
        response = review(lead_client, demonstration, **body)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_review"
        assert "reason" in response.json()["errors"]
    response = review(lead_client, demonstration, decision="reject", reason="Off topic: it explains another thing.")
    assert response.status_code == 200
    demonstration.refresh_from_db()
    assert (demonstration.status, demonstration.review_reason) == ("rejected", "Off topic: it explains another thing.")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "reject", "reason": "No.", "edited_text": "Something else."}, "edited_text"),
        ({"decision": "maybe"}, "decision"),
        ({"decision": "accept", "reason": "x" * 2001}, "reason"),
        ({}, "decision"),
    ],
)
def test_a_malformed_review_is_refused_and_changes_nothing(lead_client, demos, body, field):
    response = review(lead_client, demos["ann-2"], **body)
    assert response.status_code == 400
    assert field in str(response.json())
    demos["ann-2"].refresh_from_db()
    assert demos["ann-2"].status == "pending" and demos["ann-2"].reviewed_by is None


def test_an_edit_over_the_projects_limit_or_blank_is_refused(lead_client, project, demos):
    project.demonstration_max_chars = 60
    project.save(update_fields=["demonstration_max_chars"])
    response = review(lead_client, demos["ann-3"], decision="accept", edited_text="y" * 61)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_review")
    assert "edited_text" in response.json()["errors"]
    assert review(lead_client, demos["ann-3"], decision="accept", edited_text=" \n ").status_code == 400
    assert review(lead_client, demos["ann-3"], decision="accept", edited_text="y" * 60).status_code == 200


def test_a_decision_is_final_a_second_review_is_409(lead_client, project, demos):
    demonstration = demos["cid-0"]
    assert review(lead_client, demonstration, decision="reject", reason="Too short.").status_code == 200
    for body in (
        {"decision": "accept"},
        {"decision": "reject", "reason": "Another reason."},
        {"decision": "accept", "edited_text": "Blue, the colour of the sky."},
    ):
        response = review(lead_client, demonstration, **body)
        assert response.status_code == 409
        assert response.json()["code"] == "already_reviewed"
        assert response.json()["status"] == "rejected"
    # Another lead's identical review is a second review, not a retry.
    UserFactory(username="lead2")
    member_add(project=project, username="lead2", role="lead")
    other = _client(UserFactory(username="lead2"))
    assert review(other, demonstration, decision="reject", reason="Too short.").status_code == 409
    demonstration.refresh_from_db()
    assert (demonstration.status, demonstration.review_reason) == ("rejected", "Too short.")


def test_a_lead_does_not_review_their_own_demonstration(lead_client, lead, project):
    item = prompt_item(empty_demonstration_batch(project), "own-1", prompt="Own?")
    mine = written(item, lead.username, "The lead wrote this one.", member=False)
    response = review(lead_client, mine, decision="accept")
    assert (response.status_code, response.json()["code"]) == (403, "own_demonstration")
    mine.refresh_from_db()
    assert mine.status == "pending"


@pytest.mark.parametrize(
    ("who", "status"), [("annotator_client", 403), ("ml_engineer_client", 403), ("stranger_client", 404)]
)
def test_only_leads_review(request, who, status, project, demos):
    client = request.getfixturevalue(who)
    assert review(client, demos["ann-0"], decision="accept").status_code == status
    assert queue(client, project).status_code == status
    writers = client.get(reverse("annotation:demonstration-writers", args=[project.pk]))
    assert writers.status_code == status
    demos["ann-0"].refresh_from_db()
    assert demos["ann-0"].status == "pending"


def test_anonymous_and_missing(anon_client, lead_client, project, demos):
    assert review(anon_client, demos["ann-0"], decision="accept").status_code == 401
    response = lead_client.post("/api/v1/demonstrations/999999999/review/", {"decision": "accept"}, format="json")
    assert (response.status_code, response.json()) == (404, {"code": "not_found", "detail": "Not found."})


def test_a_lead_of_another_project_sees_nothing(project, demos):
    elsewhere = ProjectFactory(name="Elsewhere")
    UserFactory(username="lead-elsewhere")
    member_add(project=elsewhere, username="lead-elsewhere", role="lead")
    client = _client(UserFactory(username="lead-elsewhere"))
    response = review(client, demos["ann-0"], decision="accept")
    assert (response.status_code, response.json()) == (404, {"code": "not_found", "detail": "Not found."})
    assert queue(client, project).status_code == 404


# --- Per-writer figures ---------------------------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    """The textbook dynamic programme, independent of rapidfuzz."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def test_writer_figures_against_an_independent_computation(lead_client, project, demos):
    edits = {
        "ann-0": "Thing 0 is explained like this, in rather more words.",
        "ann-1": "Thing one is explained like this.",
    }
    for key, text in edits.items():
        review(lead_client, demos[key], decision="accept", edited_text=text)
    review(lead_client, demos["ann-2"], decision="accept")
    review(lead_client, demos["ann-3"], decision="reject", reason="Wrong thing.")
    review(lead_client, demos["bob-0"], decision="reject", reason="Not an explanation.")
    response = lead_client.get(reverse("annotation:demonstration-writers", args=[project.pk]))
    assert response.status_code == 200
    rows = {row["writer"]: row for row in response.json()}
    assert list(rows) == ["ann", "bob", "cid"]
    ann = rows["ann"]
    assert (ann["demonstrations"], ann["pending"], ann["accepted"], ann["accepted_edited"], ann["rejected"]) == (
        4,
        0,
        3,
        2,
        1,
    )
    assert ann["acceptance_rate"] == pytest.approx(3 / 4)
    distances = [levenshtein(demos[k].text, text) for k, text in edits.items()]
    assert ann["edit_distance_mean"] == pytest.approx(np.mean(distances))
    assert ann["edit_distance_median"] == pytest.approx(np.median(distances))
    ratios = [levenshtein(demos[k].text, t) / max(len(demos[k].text), len(t)) for k, t in edits.items()]
    assert ann["edit_ratio_mean"] == pytest.approx(np.mean(ratios))
    assert ann["median_seconds"] == pytest.approx(np.median([30, 31, 32, 33]))
    assert ann["median_length"] == pytest.approx(np.median([len(demos[f"ann-{n}"].text) for n in range(4)]))
    bob = rows["bob"]
    assert (bob["acceptance_rate"], bob["rejected"], bob["pending"]) == (0.0, 1, 3)
    assert bob["edit_distance_mean"] is None and bob["edit_distance_median"] is None
    assert bob["median_seconds"] == statistics.median([100, 110, 120, 130])
    cid = rows["cid"]
    assert cid["acceptance_rate"] is None  # nothing reviewed yet
    one_batch = lead_client.get(
        reverse("annotation:demonstration-writers", args=[project.pk]), {"batch": demos["cid-0"].batch_id}
    ).json()
    assert [row["writer"] for row in one_batch] == ["cid"]


# --- The admin -------------------------------------------------------------------------------------------------------


def test_the_admin_accepts_and_rejects_with_a_reason(client, lead, project, demos):
    client.force_login(lead)
    url = reverse("admin:annotation_demonstration_changelist")
    listing = client.get(url)
    assert listing.status_code == 200
    assert f"/admin/annotation/demonstration/{demos['ann-0'].pk}/change/" in listing.content.decode()
    client.post(url, {"action": "accept_demonstrations", "_selected_action": [demos["ann-0"].pk, demos["bob-0"].pk]})
    demos["ann-0"].refresh_from_db()
    assert (demos["ann-0"].status, demos["ann-0"].reviewed_by_id) == ("accepted", lead.pk)
    # Rejecting asks for the reason first; nothing is rejected until it is given.
    form = client.post(url, {"action": "reject_demonstrations", "_selected_action": [demos["ann-1"].pk]})
    assert form.status_code == 200 and 'name="reason"' in form.content.decode()
    demos["ann-1"].refresh_from_db()
    assert demos["ann-1"].status == "pending"
    blank = client.post(
        url, {"action": "reject_demonstrations", "_selected_action": [demos["ann-1"].pk], "apply": "1", "reason": ""}
    )
    assert blank.status_code == 200 and "This field is required" in blank.content.decode()
    done = client.post(
        url,
        {"action": "reject_demonstrations", "_selected_action": [demos["ann-1"].pk], "apply": "1", "reason": "Vague."},
        follow=True,
    )
    assert "Rejected 1 demonstration(s)." in done.content.decode()
    demos["ann-1"].refresh_from_db()
    assert (demos["ann-1"].status, demos["ann-1"].review_reason) == ("rejected", "Vague.")
    # A decision is final there too.
    again = client.post(url, {"action": "accept_demonstrations", "_selected_action": [demos["ann-1"].pk]}, follow=True)
    assert "a decision is final" in again.content.decode()
    demos["ann-1"].refresh_from_db()
    assert demos["ann-1"].status == "rejected"


def test_the_admin_shows_demonstrations_to_leads_only(client, ml_engineer, project, demos):
    client.force_login(ml_engineer)
    assert client.get(reverse("admin:annotation_demonstration_changelist")).status_code == 403


# --- The lead's page (its forms, without a browser) ---------------------------------------------------------------


def page_url(project) -> str:
    return reverse("frontend:lead-demonstrations", args=[project.pk])


def test_the_page_reviews_through_its_forms(client, lead, project, demos):
    client.force_login(lead)
    page = client.get(page_url(project))
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="review-form"') == 9
    assert 'id="writer-table"' in html
    # The editor sends the text back with the browser's line breaks: no edit.
    demonstration = demos["ann-0"]
    Demonstration.objects.filter(pk=demonstration.pk).update(text="Line one.\nLine two.")
    response = client.post(
        page_url(project),
        {
            "demonstration": demonstration.pk,
            "decision": "accept",
            "edited_text": "Line one.\r\nLine two.",
            "reason": "",
        },
    )
    assert response.status_code == 302
    demonstration.refresh_from_db()
    assert (demonstration.status, demonstration.edited_text) == ("accepted", "")
    # A rejection without a reason is refused with the reason why, and nothing changes.
    refused = client.post(
        page_url(project), {"demonstration": demos["ann-1"].pk, "decision": "reject", "reason": ""}, follow=True
    )
    assert "was not reviewed (invalid_review): A rejection needs a reason." in refused.content.decode()
    demos["ann-1"].refresh_from_db()
    assert demos["ann-1"].status == "pending"


def test_the_page_refuses_a_demonstration_of_another_project(client, lead, project, demos):
    elsewhere = ProjectFactory(name="Elsewhere")
    theirs = written(
        prompt_item(empty_demonstration_batch(elsewhere), "e-1", prompt="?"), "eve", "Not yours to review."
    )
    client.force_login(lead)
    response = client.post(page_url(project), {"demonstration": theirs.pk, "decision": "accept"})
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "pending"


def test_the_dashboard_links_to_the_review_page(client, lead, project):
    client.force_login(lead)
    html = client.get(reverse("frontend:lead-project", args=[project.pk])).content.decode()
    assert f'href="{page_url(project)}"' in html


# --- What annotators never reach -------------------------------------------------------------------------------------


def test_review_outcomes_never_reach_annotators(client, annotator, annotator_client, lead_client, project, demos):
    """The writer of a rejected demonstration is refused every review door, and nothing they reach carries the
    reason or the decision."""
    mine = written(
        prompt_item(empty_demonstration_batch(project, "mine"), "mine-1", prompt="Mine?"),
        annotator.username,
        "The annotator's own demonstration.",
    )
    assert review(lead_client, mine, decision="reject", reason=SECRET_REASON).status_code == 200
    review(lead_client, demos["ann-0"], decision="accept", edited_text="An edit the writer never sees.")
    doors = [
        annotator_client.get(reverse("annotation:demonstration-queue", args=[project.pk]), {"status": "all"}),
        annotator_client.get(reverse("annotation:demonstration-writers", args=[project.pk])),
        review(annotator_client, mine, decision="accept"),
    ]
    assert [d.status_code for d in doors] == [403, 403, 403]
    client.force_login(annotator)
    pages = [
        client.get(page_url(project)),
        client.get(reverse("frontend:home")),
        client.get(reverse("frontend:annotate", args=[project.pk])),
        annotator_client.get(reverse("annotation:project-list")),
        client.get(reverse("admin:annotation_demonstration_changelist")),
    ]
    assert pages[0].status_code == 403
    for response in [*doors, *pages]:
        body = response.content.decode()
        assert SECRET_REASON not in body and "An edit the writer never sees." not in body


# --- Two leads at once ----------------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_leads_deciding_at_once_make_one_decision():
    """Eight leads, each on their own connection, send different decisions on the same demonstration at the same
    instant (PostgreSQL's row lock; SQLite serialises writers anyway): one decision stands, the rest get 409."""
    require_postgres()
    project = ProjectFactory(name="Race")
    leads = []
    for n in range(8):
        UserFactory(username=f"race-lead-{n}")
        member_add(project=project, username=f"race-lead-{n}", role="lead")
        leads.append(UserFactory(username=f"race-lead-{n}"))
    demonstration = written(
        prompt_item(empty_demonstration_batch(project), "race-1", prompt="Go?"), "w", "An answer here."
    )
    barrier = threading.Barrier(len(leads))

    def decide(n: int) -> tuple[int, str | None]:
        try:
            client = APIClient()
            client.force_authenticate(leads[n])
            body = {"decision": "accept"} if n % 2 else {"decision": "reject", "reason": f"Reason {n}."}
            barrier.wait()
            response = review(client, demonstration, **body)
            return response.status_code, response.json().get("code")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(leads)) as pool:
        answers = list(pool.map(decide, range(len(leads))))
    assert sorted(status for status, _ in answers) == [200] + [409] * 7, answers
    assert {code for status, code in answers if status == 409} == {"already_reviewed"}
    demonstration.refresh_from_db()
    winner = next(n for n, (status, _) in enumerate(answers) if status == 200)
    assert demonstration.reviewed_by_id == leads[winner].pk
    assert demonstration.status == ("accepted" if winner % 2 else "rejected")
