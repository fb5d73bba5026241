"""The annotator API contract: every status code, for annotators, leads, strangers and anonymous users."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import AnnotationSession, Assignment, Batch, Item, Judgment
from annotation.services import member_add
from tests.factories import BatchFactory, ItemFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["fast_path", "drf_views"])
def loop_path(request, settings):
    """Every contract test twice: through the annotator loop's fast path, and through the DRF views alone."""
    settings.TANDEM_LOOP_FAST_PATH = request.param == "fast_path"


@pytest.fixture
def batch(project):
    return BatchFactory(project=project, name="b1")


@pytest.fixture
def items(batch):
    return ItemFactory.create_batch(4, batch=batch)


def start(client, project):
    return client.post(f"/api/v1/projects/{project.pk}/sessions/")


def next_of(client, session_id):
    return client.get(f"/api/v1/sessions/{session_id}/next/")


def judge(client, assignment_id, **body):
    return client.post(f"/api/v1/assignments/{assignment_id}/judgment/", {"choice": "left", **body}, format="json")


def test_session_start_201_then_200_with_the_open_one(annotator_client, project):
    first = start(annotator_client, project)
    assert first.status_code == 201
    assert set(first.json()) >= {"id", "expires_at", "max_tasks", "tasks_done"}
    assert first.json()["max_tasks"] == 200 and first.json()["tasks_done"] == 0
    again = start(annotator_client, project)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


def test_leads_may_annotate_but_strangers_and_ml_engineers_may_not(
    lead_client, stranger_client, ml_engineer_client, project
):
    assert start(lead_client, project).status_code == 201
    response = start(ml_engineer_client, project)
    assert response.status_code == 403 and response.json()["code"] == "not_member"
    # Someone with no role in the project gets what a missing project gives: no existence oracle.
    stranger, missing = start(stranger_client, project), stranger_client.post("/api/v1/projects/999999/sessions/")
    assert stranger.status_code == missing.status_code == 404
    assert stranger.json() == missing.json()


def test_anonymous_users_are_refused_everywhere(anon_client, project, annotator_client, items):
    session_id = start(annotator_client, project).json()["id"]
    assignment_id = next_of(annotator_client, session_id).json()["assignment_id"]
    assert start(anon_client, project).status_code in (401, 403)
    assert next_of(anon_client, session_id).status_code in (401, 403)
    assert judge(anon_client, assignment_id).status_code in (401, 403)


def test_unknown_project_is_404(annotator_client):
    assert annotator_client.post("/api/v1/projects/99999/sessions/").status_code == 404


def test_next_serves_blinded_item_and_reload_returns_same(annotator_client, project, items):
    session_id = start(annotator_client, project).json()["id"]
    first = next_of(annotator_client, session_id)
    assert first.status_code == 200
    body = first.json()
    assert set(body) >= {"assignment_id", "left", "right", "dimensions", "criteria_version", "lease_expires_at"}
    assert "prompt" in body and "messages" not in body
    assert body["criteria_version"] == 1
    assert [d["key"] for d in body["dimensions"]] == ["harmlessness", "honesty", "helpfulness"]
    assert body["left"]["text"] != body["right"]["text"]
    assert body["left"]["id"] != body["right"]["id"]
    again = next_of(annotator_client, session_id)
    assert again.json()["assignment_id"] == body["assignment_id"]
    assert again.json()["left"] == body["left"]


def test_messages_prompt_is_served_as_messages(annotator_client, project, batch):
    ItemFactory(
        batch=batch,
        prompt="",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Help?"},
        ],
    )
    session_id = start(annotator_client, project).json()["id"]
    body = next_of(annotator_client, session_id).json()
    assert "prompt" not in body and [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_next_is_404_for_someone_elses_session(annotator_client, lead_client, project, items):
    session_id = start(annotator_client, project).json()["id"]
    assert next_of(lead_client, session_id).status_code == 404


def test_judgment_201_then_200_same_then_409_different(annotator_client, project, items):
    session_id = start(annotator_client, project).json()["id"]
    shown = next_of(annotator_client, session_id).json()
    created = judge(
        annotator_client,
        shown["assignment_id"],
        choice="left",
        dimensions={"honesty": "right"},
        justification="clearer",
    )
    assert created.status_code == 201
    assert created.json()["choice"] == "left"
    retry = judge(
        annotator_client,
        shown["assignment_id"],
        choice="left",
        dimensions={"honesty": "right"},
        justification="clearer",
    )
    assert retry.status_code == 200 and retry.json()["id"] == created.json()["id"]
    conflict = judge(annotator_client, shown["assignment_id"], choice="right")
    assert conflict.status_code == 409 and conflict.json()["code"] == "conflict"
    assert Judgment.objects.count() == 1


def test_judgment_is_stored_as_a_or_b_whatever_side_it_was_on(annotator_client, project, items):
    session_id = start(annotator_client, project).json()["id"]
    shown = next_of(annotator_client, session_id).json()
    judge(annotator_client, shown["assignment_id"], choice="left", dimensions={"helpfulness": "left"})
    judgment = Judgment.objects.get()
    assignment = Assignment.objects.get(pk=shown["assignment_id"])
    expected = "a" if assignment.left_is_a else "b"
    assert judgment.choice == expected and judgment.dimensions == {"helpfulness": expected}
    assert judgment.shown_left == expected
    item = assignment.item
    assert shown["left"]["text"] == (item.response_a_text if assignment.left_is_a else item.response_b_text)


def test_judgment_404_when_not_yours(annotator_client, lead_client, project, items):
    session_id = start(annotator_client, project).json()["id"]
    assignment_id = next_of(annotator_client, session_id).json()["assignment_id"]
    response = judge(lead_client, assignment_id)
    assert response.status_code == 404
    assert judge(annotator_client, "00000000-0000-0000-0000-000000000000").status_code == 404


def test_judgment_410_when_lease_expired_and_item_returns_to_pool(annotator_client, project, items):
    session_id = start(annotator_client, project).json()["id"]
    assignment_id = next_of(annotator_client, session_id).json()["assignment_id"]
    Assignment.objects.filter(pk=assignment_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    response = judge(annotator_client, assignment_id)
    assert response.status_code == 410 and response.json()["code"] == "lease_expired"
    assert Judgment.objects.count() == 0
    # The expired lease no longer holds a slot: with overlap 1, another annotator gets that item at once.
    expired_item = Assignment.objects.get(pk=assignment_id).item_id
    project.overlap = 1
    project.save()
    other = UserFactory(username="other")
    member_add(project=project, username="other", role="annotator")
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(other)
    other_session = start(client, project).json()["id"]
    served = set()  # the order is random (issue 11): every item the other annotator may take, until none is left
    while (shown := next_of(client, other_session)).status_code == 200:
        served.add(Assignment.objects.get(pk=shown.json()["assignment_id"]).item_id)
        assert judge(client, shown.json()["assignment_id"]).status_code == 201
    assert expired_item in served


def test_invalid_judgments_are_400(annotator_client, project, items):
    session_id = start(annotator_client, project).json()["id"]
    assignment_id = next_of(annotator_client, session_id).json()["assignment_id"]
    assert judge(annotator_client, assignment_id, choice="a").status_code == 400
    assert judge(annotator_client, assignment_id, dimensions={"nonsense": "left"}).status_code == 400
    assert judge(annotator_client, assignment_id, dimensions={"honesty": "both_bad"}).status_code == 400
    project.allow_both_bad = False
    project.require_justification = True
    project.save()
    assert judge(annotator_client, assignment_id, choice="both_bad").status_code == 400
    response = judge(annotator_client, assignment_id, choice="left")
    assert response.status_code == 400 and "justification" in response.json()["detail"]
    assert judge(annotator_client, assignment_id, choice="left", justification="because").status_code == 201


def test_session_task_limit_410_then_break_429_then_new_session(annotator_client, project, items):
    project.session_max_tasks = 2
    project.break_minutes = 10
    project.save()
    session_id = start(annotator_client, project).json()["id"]
    for _ in range(2):
        assignment_id = next_of(annotator_client, session_id).json()["assignment_id"]
        assert judge(annotator_client, assignment_id).status_code == 201
    limit = next_of(annotator_client, session_id)
    assert limit.status_code == 410 and limit.json()["code"] == "session_limit"
    on_break = start(annotator_client, project)
    assert on_break.status_code == 429
    assert on_break.json()["code"] == "on_break" and 590 <= on_break.json()["retry_after"] <= 600
    assert int(on_break["Retry-After"]) == on_break.json()["retry_after"]
    AnnotationSession.objects.filter(pk=session_id).update(ended_at=timezone.now() - timedelta(minutes=11))
    assert start(annotator_client, project).status_code == 201


def test_session_minutes_limit_410(annotator_client, project, items):
    session_id = start(annotator_client, project).json()["id"]
    AnnotationSession.objects.filter(pk=session_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = next_of(annotator_client, session_id)
    assert response.status_code == 410 and response.json()["code"] == "session_limit"
    assert start(annotator_client, project).status_code == 429


def test_204_when_nothing_left_and_closed_batches_are_not_served(annotator_client, project, batch):
    session_id = start(annotator_client, project).json()["id"]
    assert next_of(annotator_client, session_id).status_code == 204
    ItemFactory(batch=batch)
    Batch.objects.filter(pk=batch.pk).update(status="closed")
    assert next_of(annotator_client, session_id).status_code == 204


def test_closed_batch_judgment_410(annotator_client, project, items, batch):
    session_id = start(annotator_client, project).json()["id"]
    assignment_id = next_of(annotator_client, session_id).json()["assignment_id"]
    Batch.objects.filter(pk=batch.pk).update(status="closed")
    response = judge(annotator_client, assignment_id)
    assert response.status_code == 410 and response.json()["code"] == "batch_closed"


def test_overlap_full_410_when_a_re_leased_item_was_judged_by_others(annotator_client, project, batch):
    project.overlap = 1
    project.save()
    item = ItemFactory(batch=batch)
    session_id = start(annotator_client, project).json()["id"]
    assignment_id = next_of(annotator_client, session_id).json()["assignment_id"]
    # Someone else filled the item's only slot meanwhile (e.g. after a lease expired and was re-leased).
    Item.objects.filter(pk=item.pk).update(judgment_count=1)
    response = judge(annotator_client, assignment_id)
    assert response.status_code == 410 and response.json()["code"] == "overlap_full"
    assert Judgment.objects.count() == 0


def test_one_annotator_never_gets_an_item_twice_and_overlap_is_respected(project, batch):
    from rest_framework.test import APIClient

    project.overlap = project.max_overlap = 2  # a fixed cap: no adaptive extra judgments here
    project.gold_rate = 0
    project.save()
    ItemFactory.create_batch(3, batch=batch)
    seen_by = {}
    for n in range(4):
        user = UserFactory(username=f"a{n}")
        member_add(project=project, username=user.username, role="annotator")
        client = APIClient()
        client.force_authenticate(user)
        session_id = start(client, project).json()["id"]
        mine = []
        while (response := next_of(client, session_id)).status_code == 200:
            assignment = Assignment.objects.get(pk=response.json()["assignment_id"])
            mine.append(assignment.item_id)
            assert judge(client, assignment.pk).status_code == 201
        assert len(mine) == len(set(mine))
        seen_by[user.username] = mine
    counts = {item.pk: item.judgments.count() for item in Item.objects.all()}
    assert counts == dict.fromkeys(counts, 2)
    # Closest to complete first: the first annotators' items are finished by the next ones.
    assert set(seen_by["a1"]) == set(seen_by["a0"])


def test_too_fast_judgments_are_kept_and_flagged(annotator_client, project, items):
    session_id = start(annotator_client, project).json()["id"]
    assignment_id = next_of(annotator_client, session_id).json()["assignment_id"]
    assert judge(annotator_client, assignment_id).status_code == 201
    judgment = Judgment.objects.get()
    assert judgment.too_fast and judgment.seconds < 3
    Assignment.objects.filter(session_id=session_id, judged_at__isnull=True).update(
        leased_at=timezone.now() - timedelta(seconds=20)
    )
    assignment_id = next_of(annotator_client, session_id).json()["assignment_id"]
    Assignment.objects.filter(pk=assignment_id).update(leased_at=timezone.now() - timedelta(seconds=20))
    judge(annotator_client, assignment_id)
    slow = Judgment.objects.get(assignment_id=assignment_id)
    assert not slow.too_fast and slow.seconds >= 20


def test_gold_items_look_like_others_and_record_a_match(annotator_client, project, batch):
    project.gold_rate = 1.0
    project.save()
    gold = ItemFactory(batch=batch, gold="tie")
    session_id = start(annotator_client, project).json()["id"]
    shown = next_of(annotator_client, session_id).json()
    assert Assignment.objects.get(pk=shown["assignment_id"]).item_id == gold.pk
    assert "gold" not in str(shown).lower()
    judge(annotator_client, shown["assignment_id"], choice="tie")
    judgment = Judgment.objects.get()
    assert judgment.is_gold and judgment.gold_correct is True


def _judge_as(project, username, choice):
    from rest_framework.test import APIClient

    user = UserFactory(username=username)
    member_add(project=project, username=username, role="annotator")
    client = APIClient()
    client.force_authenticate(user)
    session_id = start(client, project).json()["id"]
    response = next_of(client, session_id)
    if response.status_code != 200:
        return None
    assignment = Assignment.objects.get(pk=response.json()["assignment_id"])
    side = "left" if (choice == "a") == assignment.left_is_a else "right"
    judge(client, assignment.pk, choice=side if choice in ("a", "b") else choice)
    return assignment.item_id


def test_adaptive_overlap_asks_for_a_fourth_judgment_only_on_split_items(project, batch):
    project.gold_rate = 0
    project.save()
    agreed, split = ItemFactory(batch=batch), ItemFactory(batch=batch)
    Item.objects.filter(pk=split.pk).update(judgment_count=0)
    votes = {agreed.pk: ["a", "a", "b"], split.pk: ["a", "b", "tie"]}
    from rest_framework.test import APIClient

    # Each of three annotators judges both items; their choices follow the script above.
    for n in range(3):
        user = UserFactory(username=f"v{n}")
        member_add(project=project, username=user.username, role="annotator")
        client = APIClient()
        client.force_authenticate(user)
        session_id = start(client, project).json()["id"]
        for _ in range(2):
            assignment = Assignment.objects.get(pk=next_of(client, session_id).json()["assignment_id"])
            choice = votes[assignment.item_id][n]
            side = {
                "a": "left" if assignment.left_is_a else "right",
                "b": "right" if assignment.left_is_a else "left",
            }.get(choice, choice)
            assert judge(client, assignment.pk, choice=side).status_code == 201
    agreed.refresh_from_db()
    split.refresh_from_db()
    assert (agreed.judgment_count, agreed.extra_judgments) == (3, 0)
    assert (split.judgment_count, split.extra_judgments) == (3, 1)
    # The fourth annotator is offered only the split item.
    assert _judge_as(project, "v3", "a") == split.pk
    assert _judge_as(project, "v4", "a") is None  # 4 votes a,b,tie,a: a wins 2 of 3 A/B votes (0.67): agreed, no fifth
