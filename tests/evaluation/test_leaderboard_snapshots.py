"""Stored leaderboards: a worker computes a project's checkpoint leaderboard and stores it; the Checkpoints page and
the leaderboard API read the stored one, say when it was computed and whether votes came in since, and never compute
it on a page view (a missing or stale one is asked for through the task outbox). Beat's timer refreshes only the
projects whose evaluation data moved."""

import io
import json
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from annotation.models import AnnotationSession, Assignment, Batch, Judgment
from core.models import OutboxMessage
from evaluation import receivers, tasks
from evaluation.models import EvaluationSettings, LeaderboardSnapshot
from evaluation.services.leaderboards import KEPT_PER_PROJECT, leaderboard_refresh
from tests.evaluation.results_world import add_evaluation_batch, add_player, annotators_for, make_world
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db
REFRESH = "evaluation.refresh_leaderboard"


def _world(project, *, prompts=30):
    EvaluationSettings.objects.get_or_create(project=project, defaults={"bootstrap_resamples": 200})
    world = make_world(project, prompts=prompts)
    base = add_player(world, step=None)
    s10 = add_player(world, step=10)
    eb = add_evaluation_batch(world, candidate=s10, baseline=base, share=0.7, annotators=2)
    return world, eb


@pytest.fixture
def world(project):
    return _world(project)


def _one_more_vote(world, eb) -> Judgment:
    """A judgment for the baseline from a new annotator, as the annotator loop would store it."""
    user = annotators_for(world, 3)[2]
    item = eb.items.select_related("item").first()
    now = timezone.now()
    session = AnnotationSession.objects.create(
        project=world.project, annotator=user, started_at=now, expires_at=now + timedelta(hours=1), max_tasks=10
    )
    lease = Assignment.objects.create(
        session=session, item=item.item, annotator=user, left_is_a=True, leased_at=now,
        lease_expires_at=now + timedelta(minutes=5), judged_at=now,
    )  # fmt: skip
    return Judgment.objects.create(
        assignment=lease, item=item.item, batch=eb.batch, annotator=user, shown_left="a", seconds=5,
        choice="b" if item.candidate_is_a else "a",
    )  # fmt: skip


def _page(user, project, client: Client | None = None) -> str:
    if client is None:
        client = Client()
        client.force_login(user)
    response = client.get(f"/projects/{project.pk}/checkpoints/")
    assert response.status_code == 200
    return response.content.decode()


def _refresh_requests(project) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(task=REFRESH, key=f"project:{project.pk}:leaderboard"))


def _refuse(**kwargs):
    raise AssertionError("the leaderboard was computed on a page view")


@pytest.fixture
def no_computing(monkeypatch):
    """Any computation of a leaderboard fails the test: the page must only read."""
    monkeypatch.setattr("evaluation.selectors_results._leaderboard", _refuse)


def test_a_refresh_stores_the_leaderboard_and_keeps_the_last_few(project, world):
    snapshot = leaderboard_refresh(project_id=project.pk)
    assert snapshot.project == project and snapshot.seconds >= 0
    assert snapshot.data["counts"] == {"judgments": 60, "prompts": 30, "batches": 1, "players": 2}
    assert snapshot.data["resamples"] == 200
    assert [p["key"] for p in snapshot.data["players"]] == ["base:tiny", world[0].players[1].key]
    assert snapshot.data["players"][1]["win_rate_vs_previous"]["value"] == pytest.approx(0.7)
    for _ in range(KEPT_PER_PROJECT + 2):
        latest = leaderboard_refresh(project_id=project.pk)
    kept = LeaderboardSnapshot.objects.filter(project=project)
    assert kept.count() == KEPT_PER_PROJECT and kept.first() == latest and not kept.filter(pk=snapshot.pk).exists()


def test_the_page_reads_the_stored_leaderboard_and_computes_nothing(
    project, world, lead, django_assert_max_num_queries, monkeypatch
):
    leaderboard_refresh(project_id=project.pk)
    monkeypatch.setattr("evaluation.selectors_results._leaderboard", _refuse)
    client = Client()
    client.force_login(lead)
    with django_assert_max_num_queries(12):
        html = _page(lead, project, client)
    table = html.split('id="leaderboard"')[1].split("</table>")[0]
    assert [label.strip() for label in re.findall(r'<th scope="row">([^<]+)', table)] == [
        p.label for p in world[0].players
    ]
    assert 'data-state="current"' in html and re.search(r"Computed \d+ s ago", html)
    assert _refresh_requests(project) == []  # current: nothing asked for


def test_after_a_new_vote_the_page_shows_the_stored_board_as_refreshing_and_asks_once(
    project, world, lead, monkeypatch
):
    leaderboard_refresh(project_id=project.pk)
    _one_more_vote(*world)
    monkeypatch.setattr("evaluation.selectors_results._leaderboard", _refuse)
    html = _page(lead, project)
    assert 'data-state="stale"' in html and "new judgments since" in html and "refreshing" in html
    assert "60 judgments" in html  # still the stored board: the new vote is not in it yet
    requests = _refresh_requests(project)
    assert len(requests) == 1 and requests[0].args == [project.pk] and requests[0].status == "pending"
    _page(lead, project)
    assert len(_refresh_requests(project)) == 1  # a request is waiting: views do not pile up more
    # The worker runs it: the page is current again and counts the vote.
    monkeypatch.undo()
    assert tasks.refresh_leaderboard_task(project.pk) is not None
    assert tasks.refresh_leaderboard_task(project.pk) is None  # a duplicate message computes nothing
    html = _page(lead, project)
    assert 'data-state="current"' in html and "61 judgments" in html


def test_before_the_first_refresh_the_page_says_not_computed_yet_and_asks_for_it(project, world, lead, no_computing):
    html = _page(lead, project)
    assert 'data-state="not-computed"' in html and "has not been computed yet" in html
    assert 'id="leaderboard"' not in html
    assert len(_refresh_requests(project)) == 1


def test_a_project_without_evaluation_batches_asks_for_nothing(project, lead, no_computing):
    html = _page(lead, project)
    assert 'id="no-evaluations"' in html and _refresh_requests(project) == []


def test_beat_refreshes_only_the_projects_whose_data_moved(project, world):
    other = ProjectFactory(name="Other")
    _world(other, prompts=12)
    quiet = ProjectFactory(name="No evaluations")  # never looked at: it has no evaluation batch
    assert sorted(tasks.refresh_due_leaderboards_task()) == sorted([project.pk, other.pk])
    assert tasks.refresh_due_leaderboards_task() == []  # nothing moved
    _one_more_vote(*world)
    assert tasks.refresh_due_leaderboards_task() == [project.pk]
    assert LeaderboardSnapshot.objects.filter(project=project).first().data["counts"]["judgments"] == 61
    assert LeaderboardSnapshot.objects.filter(project=other).count() == 1
    # A closed batch, reopened (or the other way round), and a changed setting move the key too.
    Batch.objects.filter(pk=world[1].batch_id).update(status=Batch.Status.OPEN)
    assert tasks.refresh_due_leaderboards_task() == [project.pk]
    EvaluationSettings.objects.filter(project=other).update(diminishing_returns=0.05)
    assert tasks.refresh_due_leaderboards_task() == [other.pk]
    assert not LeaderboardSnapshot.objects.filter(project=quiet).exists()


def test_the_timer_is_on_beat_and_the_default_queue():
    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["evaluation-refresh-due-leaderboards"]
    assert entry["task"] == "evaluation.refresh_due_leaderboards" and entry["options"]["queue"] == "default"
    assert entry["schedule"] == settings.TANDEM_LEADERBOARD_REFRESH_SECONDS == 30.0
    app.loader.import_default_modules()
    assert {"evaluation.refresh_due_leaderboards", REFRESH} <= set(app.tasks)
    assert app.amqp.router.route({}, REFRESH)["queue"].name == "default"


def test_the_api_answers_the_stored_leaderboard_and_fresh_brings_it_up_to_date(project, world, lead_client):
    url = f"/api/v1/projects/{project.pk}/leaderboard/"
    first = lead_client.get(url).json()  # none stored yet: the API computes and stores it once
    assert first["stale"] is False and first["snapshot_id"] == LeaderboardSnapshot.objects.get().pk
    assert first["computed_at"] and first["counts"]["judgments"] == 60
    assert {"rating", "run"} <= set(first["players"][1]) and first["anchor"]["run"] == world[0].players[
        0
    ].sampled.run_id
    _one_more_vote(*world)
    stale = lead_client.get(url).json()
    assert (
        stale["stale"] is True and stale["counts"]["judgments"] == 60 and stale["snapshot_id"] == first["snapshot_id"]
    )
    fresh = lead_client.get(url + "?fresh=1").json()
    assert (
        fresh["stale"] is False and fresh["counts"]["judgments"] == 61 and fresh["snapshot_id"] != first["snapshot_id"]
    )
    assert lead_client.get(url).json()["snapshot_id"] == fresh["snapshot_id"]  # stored for the page too
    assert lead_client.get(url + "?fresh=1").json()["snapshot_id"] == fresh["snapshot_id"]  # current: not recomputed
    # An explicit resample count is computed on the request and not stored.
    other = lead_client.get(url + "?resamples=50").json()
    assert other["resamples"] == 50 and other["snapshot_id"] is None and other["counts"]["judgments"] == 61
    assert LeaderboardSnapshot.objects.filter(project=project).count() == 2
    assert lead_client.get(url + "?fresh=maybe").status_code == 400


def test_closing_an_evaluation_batch_asks_for_a_refresh(project, world, lead_client):
    _, eb = world
    Batch.objects.filter(pk=eb.batch.pk).update(status=Batch.Status.OPEN, closed_at=None)
    OutboxMessage.objects.all().delete()
    assert lead_client.post(f"/api/v1/batches/{eb.batch.pk}/close/").status_code == 200  # the signal's receiver
    assert len(_refresh_requests(project)) == 1, list(OutboxMessage.objects.values_list("task", "key", "status"))
    comparison = Batch.objects.create(project=project, name="plain", criteria_version=eb.batch.criteria_version)
    OutboxMessage.objects.all().delete()
    receivers.refresh_leaderboard_on_batch_closed(sender=None, batch=comparison)
    assert _refresh_requests(project) == []


def test_the_command_computes_now_and_stores_on_request(project, world):
    out = io.StringIO()
    call_command("evaluation", project=project.name, json=True, stdout=out)
    assert json.loads(out.getvalue())["leaderboard"]["counts"]["judgments"] == 60
    assert not LeaderboardSnapshot.objects.exists()
    call_command("evaluation", project=project.name, store=True, stdout=io.StringIO())
    assert LeaderboardSnapshot.objects.filter(project=project).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_refreshes_of_one_project_at_once_compute_once(monkeypatch):
    """The timer and a page's request (or a message delivered twice) meeting: one computes, the others return."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from evaluation import selectors_results
    from tests.annotation.test_concurrency import require_postgres

    require_postgres()
    project = ProjectFactory(name="Racing refreshes")
    _world(project, prompts=6)
    real = selectors_results._leaderboard

    def slow(**kwargs):
        time.sleep(0.5)  # long enough for every thread to try while the first one computes
        return real(**kwargs)

    monkeypatch.setattr(selectors_results, "_leaderboard", slow)
    barrier = threading.Barrier(3)

    def one(_):
        try:
            barrier.wait()
            return tasks.refresh_leaderboard_task(project.pk)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))
    assert len([r for r in results if r is not None]) == 1
    assert LeaderboardSnapshot.objects.filter(project=project).count() == 1
