"""The project's Checkpoints page (leaderboard, win-rate chart, strata, flags) and generations side by side: who
may open them, what they show, and model output shown as text. The page shows the stored leaderboard (a worker's
refresh, called here as the worker would: evaluation.services.leaderboards); tests/evaluation/
test_leaderboard_snapshots.py covers when it is stale or missing."""

import re

import pytest
from django.core.cache import cache
from django.test import Client

from evaluation.models import EvaluationSettings
from evaluation.services.leaderboards import leaderboard_refresh
from tests.evaluation.results_world import add_evaluation_batch, add_player, make_world
from trainer.models import Generation

pytestmark = pytest.mark.django_db

HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()


def browser_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(project):
    world = make_world(project, prompts=30)
    base = add_player(world, step=None, mean_reward=0.2)
    s10 = add_player(world, step=10, mean_reward=0.4)
    s20 = add_player(world, step=20, mean_reward=0.6)
    add_evaluation_batch(world, candidate=s10, baseline=base, share=0.7)
    add_evaluation_batch(world, candidate=s20, baseline=s10, share=[0.7, 0.1, 0.7])  # red_team regresses
    EvaluationSettings.objects.create(project=project, bootstrap_resamples=300)
    leaderboard_refresh(project_id=project.pk)  # what the worker does
    return world


@pytest.mark.parametrize("role", ["lead", "ml_engineer"])
def test_leads_and_ml_engineers_see_the_leaderboard_chart_strata_and_flags(request, world, role):
    user = request.getfixturevalue(role)
    response = browser_for(user).get(f"/projects/{world.project.pk}/checkpoints/")
    assert response.status_code == 200
    html = response.content.decode()
    table = html.split('id="leaderboard"')[1].split("</table>")[0]
    labels = re.findall(r'<th scope="row">([^<]+)', table)
    assert [label.strip() for label in labels] == [p.label for p in world.players]
    assert "anchor" in table
    assert '<svg id="win-rate-chart"' in html and "<polygon" in html and html.count("<circle") == 2
    assert 'id="strata"' in html and "band-alarm" in html.split('id="strata"')[1].split("</table>")[0]
    flags = html.split('id="flag-list"')[1].split("</ul>")[0]
    assert "stratum regression" in flags and "red_team" in flags
    assert "upper bound of that stratum" in html  # the flag explained in words
    for eb in world.batches:
        assert f"/api/v1/evaluation-batches/{eb.pk}/results/" in html
        assert f"/projects/{world.project.pk}/generations/?a={eb.candidate.run_id}&amp;b={eb.baseline.run_id}" in html
    assert "<script" not in html.split("<main>")[1]  # no inline script: the chart is drawn on the server
    assert 'data-state="current"' in html and re.search(r"Computed \d+ s ago", html)


def test_a_project_without_evaluations_says_so(project, lead):
    response = browser_for(lead).get(f"/projects/{project.pk}/checkpoints/")
    assert response.status_code == 200 and 'id="no-evaluations"' in response.content.decode()


@pytest.mark.parametrize("page", ["checkpoints", "generations"])
def test_annotators_and_strangers_never_reach_the_pages(world, annotator, stranger, page):
    url = f"/projects/{world.project.pk}/{page}/"
    assert browser_for(annotator).get(url).status_code == 403
    assert browser_for(stranger).get(url).status_code == 404
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_the_home_page_links_to_checkpoints_for_those_who_may(world, lead, annotator):
    url = f"/projects/{world.project.pk}/checkpoints/"
    assert url in browser_for(lead).get("/").content.decode()
    assert url not in browser_for(annotator).get("/").content.decode()


def test_generations_side_by_side_show_model_output_as_text(world, ml_engineer):
    a, b = world.players[1].sampled, world.players[0].sampled
    Generation.objects.filter(run_id=a.run_id, prompt_id="p0").update(text=HOSTILE, reward=0.75, token_count=123)
    response = browser_for(ml_engineer).get(f"/projects/{world.project.pk}/generations/?a={a.run_id}&b={b.run_id}")
    assert response.status_code == 200
    html = response.content.decode()
    assert HOSTILE not in html and "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "123 tokens · reward 0.750" in html
    assert "Answer of base tiny to p0." in html
    # Paginated: 20 prompts on the first page, the rest on the second.
    assert html.count('class="split-item"') == 20 and "page=2" in html
    second = browser_for(ml_engineer).get(f"/projects/{world.project.pk}/generations/?a={a.run_id}&b={b.run_id}&page=2")
    assert second.content.decode().count('class="split-item"') == 10


def test_generations_of_another_project_or_set_are_refused(world, ml_engineer, project):
    a = world.players[1].sampled
    other = make_world(project, prompts=3, name="other")
    c = add_player(other, step=None, label="base on another set").sampled
    client = browser_for(ml_engineer)
    response = client.get(f"/projects/{project.pk}/generations/?a={a.run_id}&b={c.run_id}")
    assert response.status_code == 400 and "different evaluation sets" in response.content.decode()
    assert client.get(f"/projects/{project.pk}/generations/?a={a.run_id}&b=999999").status_code == 404
    assert client.get(f"/projects/{project.pk}/generations/").status_code == 200  # the picker
