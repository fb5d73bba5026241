"""The annotator loop under concurrency: many annotators, each on its own connection, through the real API.

The PostgreSQL run is the proof (row locks, SKIP LOCKED); SQLite serialises writers, so it runs a reduced loop.
"""

import os
import random
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import factory
import pytest
from django.db import connection, connections
from django.db.models import Count, F
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import Assignment, Item, Judgment
from annotation.services import member_add
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory

REQUIRE_SERVICES = os.environ.get("TANDEM_REQUIRE_SERVICES") == "1"


def require_postgres() -> None:
    if connection.vendor == "postgresql":
        return
    reason = f"needs PostgreSQL's row locks; the test database is {connection.vendor}"
    if REQUIRE_SERVICES:
        pytest.fail(f"TANDEM_REQUIRE_SERVICES=1 but {reason} (set DATABASE_URL=postgres://…)")
    pytest.skip(reason)


# --- Driving the API from threads -----------------------------------------------------------------


@dataclass
class Log:
    """What the clients were told, shared by every thread (appends to lists are atomic under the GIL)."""

    answered: list = field(default_factory=list)  # (assignment_id, judgment_id, status) for every 2xx
    refused: list = field(default_factory=list)  # (assignment_id, status, code) for every 4xx
    errors: list = field(default_factory=list)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def judge(client, assignment_id, choice):
    return client.post(f"/api/v1/assignments/{assignment_id}/judgment/", {"choice": choice}, format="json")


def in_thread(fn):
    """Runs fn on this thread's own connection and closes it after, so the test database can be flushed."""

    def run(*args):
        try:
            return fn(*args)
        finally:
            connections.close_all()

    return run


def record(log: Log, assignment_id: str, response) -> int:
    if 200 <= response.status_code < 300:
        log.answered.append((assignment_id, response.json()["id"], response.status_code))
    else:
        log.refused.append((assignment_id, response.status_code, response.json().get("code")))
    return response.status_code


def duplicate_post_at_once(user, assignment_id: str, choice: str, log: Log) -> None:
    """Two copies of one POST sent at the same instant (a double click, a client retry racing the first try)."""
    barrier = threading.Barrier(2)

    @in_thread
    def post():
        client = client_for(user)
        barrier.wait(timeout=30)
        return judge(client, assignment_id, choice)

    with ThreadPoolExecutor(2) as pool:
        responses = [f.result(timeout=120) for f in [pool.submit(post), pool.submit(post)]]
    statuses = sorted(r.status_code for r in responses)
    ids = {r.json()["id"] for r in responses}
    if statuses != [200, 201] or len(ids) != 1:
        log.errors.append(f"duplicate POST on {assignment_id}: {statuses}, ids {ids}")
    for response in responses:
        record(log, assignment_id, response)


def annotate(user, project, log: Log, seed: int, start_together: threading.Barrier, max_steps: int) -> int:
    """One annotator: next → judgment until nothing is left, with retries, expired leases and double POSTs."""
    rng = random.Random(seed)
    client = client_for(user)
    session_id = client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    start_together.wait(timeout=60)  # everyone's first `next` races for the same few items
    expired_unjudged = []
    judged = 0
    for _ in range(max_steps):
        response = client.get(f"/api/v1/sessions/{session_id}/next/")
        if response.status_code == 204:
            break
        if response.status_code != 200:
            log.errors.append(f"next answered {response.status_code}: {response.content[:200]!r}")
            break
        assignment_id = response.json()["assignment_id"]
        choice = rng.choice(["left", "right", "left", "right", "tie", "both_bad"])
        roll = rng.random()
        if roll < 0.08:
            # Walk away: the lease runs out and the item goes back to the pool; judge it late, below.
            Assignment.objects.filter(pk=assignment_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
            expired_unjudged.append((assignment_id, choice))
            continue
        if roll < 0.14:
            duplicate_post_at_once(user, assignment_id, choice, log)
        else:
            status = record(log, assignment_id, judge(client, assignment_id, choice))
            if status not in (201, 410):
                log.errors.append(f"judgment answered {status} on {assignment_id}")
            if status == 201 and roll < 0.30:  # the client did not hear the answer and retries
                first = log.answered[-1][1]
                retry = judge(client, assignment_id, choice)
                record(log, assignment_id, retry)
                if retry.status_code != 200 or retry.json()["id"] != first:
                    log.errors.append(f"retry on {assignment_id}: {retry.status_code}, {retry.content[:200]!r}")
        judged += 1
        if expired_unjudged and rng.random() < 0.5:
            late_id, late_choice = expired_unjudged.pop()
            late = judge(client, late_id, late_choice)
            record(log, late_id, late)
            if late.status_code != 410 or late.json()["code"] != "lease_expired":
                log.errors.append(f"late judgment on {late_id}: {late.status_code}, {late.content[:200]!r}")
    for late_id, late_choice in expired_unjudged:
        late = judge(client, late_id, late_choice)
        record(log, late_id, late)
        if late.status_code != 410:
            log.errors.append(f"late judgment on {late_id}: {late.status_code}")
    return judged


# --- What must hold afterwards ---------------------------------------------------------------------


def integrity_problems(*, project, log: Log) -> list[str]:
    """Every invariant of the loop, checked against the database; an empty list means all hold."""
    problems = list(log.errors)
    items = Item.objects.filter(project=project).annotate(real=Count("judgments"))
    for item in items:
        if item.judgment_count != item.real:
            problems.append(f"item {item.pk}: judgment_count {item.judgment_count} but {item.real} judgments")
        if not item.gold and item.real > project.overlap + item.extra_judgments:
            problems.append(f"item {item.pk}: {item.real} judgments > overlap {project.overlap}+{item.extra_judgments}")
        if project.overlap + item.extra_judgments > max(project.overlap, project.max_overlap):
            problems.append(f"item {item.pk}: extra judgments {item.extra_judgments} pass max_overlap")
    pairs = (
        Judgment.objects.filter(item__project=project)
        .values("item", "annotator")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    problems += [f"item {p['item']} judged {p['n']} times by annotator {p['annotator']}" for p in pairs]
    mismatched = Judgment.objects.filter(item__project=project).exclude(assignment__item=F("item"))
    problems += [f"judgment {j.pk} is on another item than its assignment" for j in mismatched]

    stored = dict(Judgment.objects.filter(item__project=project).values_list("pk", "assignment_id"))
    answered_ids = Counter()
    for assignment_id, judgment_id, _status in log.answered:
        answered_ids[judgment_id] += 1
        if stored.get(judgment_id) is None:
            problems.append(f"judgment {judgment_id} was answered 2xx but is not stored")
        elif str(stored[judgment_id]) != str(assignment_id):
            problems.append(f"judgment {judgment_id} was answered for another assignment")
    by_assignment = defaultdict(set)
    for assignment_id, judgment_id, _status in log.answered:
        by_assignment[assignment_id].add(judgment_id)
    problems += [
        f"assignment {a} was answered with judgments {ids}" for a, ids in by_assignment.items() if len(ids) > 1
    ]
    created = Counter(j for _a, j, status in log.answered if status == 201)
    problems += [f"judgment {j} was created (201) {n} times" for j, n in created.items() if n > 1]
    problems += [f"judgment {pk} is stored but nobody was told 2xx" for pk in stored if pk not in answered_ids]
    refused_then_stored = {a for a, status, _code in log.refused if status == 410} & {str(a) for a in stored.values()}
    problems += [f"assignment {a} answered 410 but has a judgment" for a in refused_then_stored]
    return problems


# --- The tests ------------------------------------------------------------------------------------


def run_loop(*, annotators: int, items: int, gold: int, overlap: int, max_steps: int) -> tuple[object, Log]:
    project = ProjectFactory(name="Race", overlap=overlap, max_overlap=overlap + 1, gold_rate=0.1)
    batch = BatchFactory(project=project, name="race")
    Item.objects.bulk_create(ItemFactory.build_batch(items, batch=batch, project=project))
    Item.objects.bulk_create(
        ItemFactory.build_batch(gold, batch=batch, project=project, gold=factory.Iterator(["a", "b", "tie"]))
    )
    users = []
    for n in range(annotators):
        user = UserFactory(username=f"racer{n}")
        member_add(project=project, username=user.username, role="annotator")
        users.append(user)
    log = Log()
    start_together = threading.Barrier(annotators)
    with ThreadPoolExecutor(annotators) as pool:
        futures = [
            pool.submit(in_thread(annotate), user, project, log, n, start_together, max_steps)
            for n, user in enumerate(users)
        ]
        judged = [f.result(timeout=600) for f in futures]
    assert sum(judged) > 0
    return project, log


def finish_with_fresh_annotators(project, log: Log) -> None:
    """Newcomers judge what is left. Leases that ran out after everyone else had stopped (or a split item's extra
    judgment) can leave slots open that nobody still working may take; none may be stranded for a newcomer."""
    for n in range(project.max_overlap + 1):
        user = UserFactory(username=f"newcomer{n}")
        member_add(project=project, username=user.username, role="annotator")
        client = client_for(user)
        session_id = client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
        while (shown := client.get(f"/api/v1/sessions/{session_id}/next/")).status_code == 200:
            assignment_id = shown.json()["assignment_id"]
            assert record(log, assignment_id, judge(client, assignment_id, "tie")) == 201


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_annotators_never_exceed_overlap_and_lose_no_judgment():
    require_postgres()
    project, log = run_loop(annotators=50, items=300, gold=20, overlap=3, max_steps=200)
    assert integrity_problems(project=project, log=log) == []
    # The load really exercised every path: late judgments refused, retries answered, the batch finished.
    codes = Counter(code for _a, _s, code in log.refused)
    assert codes["lease_expired"] > 0
    assert Counter(s for _a, _j, s in log.answered)[200] > 0
    finish_with_fresh_annotators(project, log)
    assert integrity_problems(project=project, log=log) == []
    regular = Item.objects.filter(project=project, gold="")
    assert not regular.filter(judgment_count__lt=F("extra_judgments") + project.overlap).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_loop_reduced():
    """The same loop with 8 annotators: on SQLite the IMMEDIATE transactions serialise it; it must still hold."""
    project, log = run_loop(annotators=8, items=40, gold=5, overlap=3, max_steps=100)
    assert integrity_problems(project=project, log=log) == []
    finish_with_fresh_annotators(project, log)
    assert integrity_problems(project=project, log=log) == []
    regular = Item.objects.filter(project=project, gold="")
    assert not regular.filter(judgment_count__lt=F("extra_judgments") + project.overlap).exists()


def race_next(users, session_ids) -> list:
    barrier = threading.Barrier(len(users))

    @in_thread
    def one(user, session_id):
        client = client_for(user)
        barrier.wait(timeout=30)
        return client.get(f"/api/v1/sessions/{session_id}/next/")

    with ThreadPoolExecutor(len(users)) as pool:
        return [
            f.result(timeout=120) for f in [pool.submit(one, u, s) for u, s in zip(users, session_ids, strict=True)]
        ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_for_the_last_slot_of_an_item():
    """Ten annotators ask at the same instant for the one item with one free slot: exactly one gets it."""
    require_postgres()
    project = ProjectFactory(name="Last slot", overlap=3, max_overlap=3, gold_rate=0)
    batch = BatchFactory(project=project, name="b")
    item = ItemFactory(batch=batch)
    Item.objects.filter(pk=item.pk).update(judgment_count=2)
    users, session_ids = [], []
    for n in range(10):
        user = UserFactory(username=f"r{n}")
        member_add(project=project, username=user.username, role="annotator")
        users.append(user)
        session_ids.append(client_for(user).post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"])
    responses = race_next(users, session_ids)
    assert sorted(r.status_code for r in responses) == [200] + [204] * 9
    winner = next(n for n, r in enumerate(responses) if r.status_code == 200)
    assignment_id = responses[winner].json()["assignment_id"]

    # The winner's lease runs out; the slot goes back to the pool at once and someone else takes it.
    Assignment.objects.filter(pk=assignment_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    others = [n for n in range(10) if n != winner]
    responses = race_next([users[n] for n in others], [session_ids[n] for n in others])
    assert sorted(r.status_code for r in responses) == [200] + [204] * 8
    second = others[next(n for n, r in enumerate(responses) if r.status_code == 200)]
    second_id = responses[[r.status_code for r in responses].index(200)].json()["assignment_id"]

    # Both submit at the same instant: the live lease wins, the expired one is refused, the count stays right.
    barrier = threading.Barrier(2)

    @in_thread
    def submit(user, assignment_id):
        client = client_for(user)
        barrier.wait(timeout=30)
        return judge(client, assignment_id, "left")

    with ThreadPoolExecutor(2) as pool:
        late, live = pool.submit(submit, users[winner], assignment_id), pool.submit(submit, users[second], second_id)
        late, live = late.result(timeout=60), live.result(timeout=60)
    assert (late.status_code, late.json()["code"]) == (410, "lease_expired")
    assert live.status_code == 201
    item.refresh_from_db()
    assert item.judgment_count == 3  # two set up above, one stored now
    assert list(item.judgments.values_list("assignment_id", flat=True)) == [Assignment.objects.get(pk=second_id).pk]
