"""Serving by session kind: a comparison session never gets an item of a demonstration batch (or of a labelled
source), a demonstration session only the items of open demonstration batches, each prompt up to its batch's
writers_per_item writers, never twice to one writer.

Run on SQLite (the Python steps) and on PostgreSQL (tandem_lease_next, annotator_loop_v5.sql, for comparison
sessions; its 'python' answer for demonstration ones), through the API as annotators call it.
"""

import os

import pytest
from django.db import connection
from django.utils import timezone

from annotation.models import Assignment, Batch, Demonstration, Item
from annotation.services import member_add
from tests.annotation.demonstration_fixtures import demonstration_batch, next_of, start, token_client, write
from tests.factories import BatchFactory, ItemFactory, UserFactory

pytestmark = pytest.mark.django_db

REQUIRE_SERVICES = os.environ.get("TANDEM_REQUIRE_SERVICES") == "1"


@pytest.fixture
def mixed(project):
    """The oldest open batch is a demonstration batch (so a comparison session meets it first), with a stray gold
    item in it; then a comparison batch with gold, a closed labelled source, and a second demonstration batch."""
    project.gold_rate = 0.5
    project.overlap = 2
    project.max_overlap = 2
    project.save()
    first = demonstration_batch(project, prompts=4, name="first-writing")
    Item.objects.filter(batch=first).filter(pk=Item.objects.filter(batch=first).first().pk).update(gold="a")
    pairs = BatchFactory(project=project, name="pairs")
    ItemFactory.create_batch(4, batch=pairs)
    ItemFactory.create_batch(2, batch=pairs, gold="b")
    labelled = BatchFactory(project=project, name="hh", kind=Batch.Kind.LABELLED, status=Batch.Status.OPEN)
    ItemFactory.create_batch(2, batch=labelled, labelled_choice="a")
    second = demonstration_batch(project, prompts=2, name="second-writing", writers=2)
    return {"first": first, "second": second, "pairs": pairs, "labelled": labelled}


def annotators(project, n: int) -> list:
    users = []
    for i in range(n):
        user = UserFactory(username=f"writer-{i}")
        member_add(project=project, username=user.username, role="annotator")
        users.append(user)
    return users


def served_batches(assignments) -> set[int]:
    return set(Item.objects.filter(assignments__pk__in=assignments).values_list("batch_id", flat=True))


def test_a_comparison_session_never_gets_demonstration_items(project, mixed):
    # Every draw asks for gold (the demonstration batch's stray gold item among the candidates), then falls back to
    # regular items: each of the first two annotators takes the comparison batch's six items, nothing else.
    project.gold_rate = 1.0
    project.save()
    for n, user in enumerate(annotators(project, 3)):
        client = token_client(user)
        session_id = start(client, project, "comparison")
        taken = []
        for _ in range(20):
            response = next_of(client, session_id)
            if response.status_code == 204:
                break
            body = response.json()
            assert "left" in body and "kind" not in body
            taken.append(body["assignment_id"])
            judged = client.post(f"/api/v1/assignments/{body['assignment_id']}/judgment/", {"choice": "left"})
            assert judged.status_code == 201, judged.content
        else:
            pytest.fail("the comparison session never ran out")
        assert served_batches(taken) == {mixed["pairs"].pk}
        if n < 2:  # overlap 2: the first two take every comparison item, gold included, and nothing else
            assert len(taken) == 6


def test_a_demonstration_session_gets_only_regular_items_of_open_demonstration_batches(project, mixed):
    first_prompts = set(Item.objects.filter(batch=mixed["first"], gold="").values_list("pk", flat=True))
    second_prompts = set(Item.objects.filter(batch=mixed["second"]).values_list("pk", flat=True))
    written: dict[int, list[int]] = {}
    for user in annotators(project, 3):
        client = token_client(user)
        session_id = start(client, project)
        for _ in range(20):
            response = next_of(client, session_id)
            if response.status_code == 204:
                break
            body = response.json()
            assert body["kind"] == "demonstration" and "left" not in body
            assert write(client, body["assignment_id"]).status_code == 201
        else:
            pytest.fail("the demonstration session never ran out")
        written[user.pk] = list(Demonstration.objects.filter(writer=user).values_list("item_id", flat=True))
    everything = [pk for items in written.values() for pk in items]
    assert set(everything) == first_prompts | second_prompts  # never the gold one, never a comparison item
    # Oldest batch first: the first writer wrote the first batch's three prompts before the second batch's.
    # Each prompt has its batch's writers: 1 for the first batch, 2 for the second; no writer twice on one.
    assert sorted(everything) == sorted([*first_prompts, *second_prompts, *second_prompts])
    assert all(len(items) == len(set(items)) for items in written.values())
    counts = dict(Item.objects.filter(pk__in=first_prompts | second_prompts).values_list("pk", "judgment_count"))
    assert counts == {pk: 1 if pk in first_prompts else 2 for pk in counts}


def test_a_closed_demonstration_batch_is_served_to_nobody(project, mixed):
    Batch.objects.filter(kind=Batch.Kind.DEMONSTRATION).update(status=Batch.Status.CLOSED, closed_at=timezone.now())
    client = token_client(annotators(project, 1)[0])
    assert next_of(client, start(client, project)).status_code == 204


def test_a_withdrawn_prompt_is_served_to_nobody(project, mixed):
    Batch.objects.filter(pk=mixed["second"].pk).update(status=Batch.Status.CLOSED)
    Item.objects.filter(batch=mixed["first"]).update(withdrawn_at=timezone.now())
    client = token_client(annotators(project, 1)[0])
    assert next_of(client, start(client, project)).status_code == 204


def test_a_lease_holds_a_prompts_place(project, mixed):
    """writers_per_item counts open leases too: with one writer wanted, a prompt on lease goes to nobody else, and a
    skip frees it at once."""
    Batch.objects.filter(pk=mixed["second"].pk).update(status=Batch.Status.CLOSED)
    holder, other = (token_client(user) for user in annotators(project, 2))
    held = next_of(holder, start(holder, project)).json()["assignment_id"]
    held_item = Assignment.objects.get(pk=held).item_id
    session_id = start(other, project)
    seen = []
    for _ in range(5):
        response = next_of(other, session_id)
        if response.status_code == 204:
            break
        seen.append(Assignment.objects.get(pk=response.json()["assignment_id"]).item_id)
        assert other.post(f"/api/v1/assignments/{response.json()['assignment_id']}/skip/").status_code == 200
    assert len(seen) == 2 and held_item not in seen
    assert holder.post(f"/api/v1/assignments/{held}/skip/").status_code == 200
    late = token_client(UserFactory(username="late"))
    member_add(project=project, username="late", role="annotator")
    assert Assignment.objects.get(pk=next_of(late, start(late, project)).json()["assignment_id"]).item_id in {
        held_item,
        *seen,
    }


def require_postgres():
    if connection.vendor == "postgresql":
        return
    reason = f"needs tandem_lease_next; the test database is {connection.vendor}"
    if REQUIRE_SERVICES:
        pytest.fail(f"TANDEM_REQUIRE_SERVICES=1 but {reason} (set DATABASE_URL=postgres://…)")
    pytest.skip(reason)


@pytest.mark.postgres
def test_the_lease_statement_sends_demonstration_sessions_to_the_python_steps(project, mixed):
    require_postgres()
    user = annotators(project, 1)[0]
    client = token_client(user)
    writing, judging = start(client, project), start(client, project, "comparison")

    def lease_status(session_id: int) -> str:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT status FROM tandem_lease_next(%s, %s, now(), 0.0, 0.0, true, gen_random_uuid(), 4, 5, "
                "ARRAY[1, 2, 3]::bigint[])",
                [session_id, user.pk],
            )
            return cursor.fetchone()[0]

    assert lease_status(writing) == "python"
    assert not Assignment.objects.filter(session_id=writing).exists()  # nothing leased by the statement
    assert lease_status(judging) == "new"
    assert served_batches(Assignment.objects.filter(session_id=judging).values("pk")) == {mixed["pairs"].pk}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_writers_racing_for_prompts_never_pass_writers_per_item(project):
    """Six writers on their own connections race through five prompts that want two writers each: every prompt ends
    with exactly two demonstrations, none twice from one writer, and the count on the item agrees (PostgreSQL's row
    locks; SQLite serialises writers and proves nothing here)."""
    import threading
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections
    from rest_framework.test import APIClient

    require_postgres()
    batch = demonstration_batch(project, prompts=5, writers=2)
    users = annotators(project, 6)
    together = threading.Barrier(len(users))
    errors = []

    def run(user):
        try:
            client = APIClient()
            client.force_authenticate(user)
            session_id = start(client, project)
            together.wait(timeout=60)
            for _ in range(10):
                response = next_of(client, session_id)
                if response.status_code == 204:
                    return
                answer = write(client, response.json()["assignment_id"])
                if answer.status_code != 201:  # leases hold the places: no prompt is ever over-let
                    errors.append((answer.status_code, answer.content[:200]))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(users)) as pool:
        for future in [pool.submit(run, user) for user in users]:
            future.result(timeout=300)
    assert errors == []
    per_item = Counter(Demonstration.objects.values_list("item_id", flat=True))
    assert per_item == Counter(dict.fromkeys(Item.objects.filter(batch=batch).values_list("pk", flat=True), 2))
    pairs = list(Demonstration.objects.values_list("item_id", "writer_id"))
    assert len(pairs) == len(set(pairs))
    assert set(Item.objects.filter(batch=batch).values_list("judgment_count", flat=True)) == {2}
