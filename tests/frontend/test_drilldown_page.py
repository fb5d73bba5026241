"""The lead's drill-down page (one annotator's votes, gold misses, justifications) and the runs/admin links."""

import re

import pytest
from django.test import Client

from annotation.models import Judgment
from tests.factories import BatchFactory, ItemFactory
from tests.rewards.judging import judge

pytestmark = pytest.mark.django_db

HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def browser_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_url(project, user) -> str:
    return f"/lead/projects/{project.pk}/annotators/{user.pk}/judgments/"


@pytest.fixture
def votes(project, annotator):
    """The project's annotator judged two batches; a gold item missed; one hostile justification."""
    one, two = BatchFactory(project=project, name="first"), BatchFactory(project=project, name="second")
    plain = ItemFactory(batch=one, external_id="plain-1")
    gold = ItemFactory(batch=one, external_id="gold-1", gold="a")
    later = ItemFactory(batch=two, external_id="later-1")
    judge(plain, annotator.username, "b", shown_left="b")
    judge(gold, annotator.username, "tie")
    judge(later, annotator.username, "a")
    judge(plain, "peer", "a")
    judge(plain, "peer2", "a")
    Judgment.objects.filter(item=plain, annotator=annotator).update(justification=HOSTILE)
    annotator.refresh_from_db()  # judge() reset the password: a login with the stale hash would be logged out
    return {"one": one, "two": two}


def rows_of(html: str) -> list[str]:
    return re.findall(r'<th scope="row" class="item-id">([^<]*)</th>', html)


def test_the_page_renders_the_rows(lead, project, annotator, votes):
    response = browser_for(lead).get(page_url(project, annotator))
    assert response.status_code == 200
    html = response.content.decode()
    assert rows_of(html) == ["later-1", "gold-1", "plain-1"]  # newest first
    # Shown with B on the left, the vote for B reads "B", with the model that wrote B (leads may see it).
    assert '<td class="choice">B <span class="model muted">(model-beta)</span>' in html
    assert '<td class="choice">tie<div' in html
    assert 'class="gold-wrong">missed' in html
    assert f"/api/v1/projects/{project.pk}/annotators/{annotator.pk}/judgments/?format=csv" in html
    # The justification is shown as text.
    assert "<img src=x" not in html and "<script>alert" not in html and "&lt;img src=x" in html


def test_the_filters_narrow_the_rows(lead, project, annotator, votes):
    client = browser_for(lead)
    assert rows_of(client.get(page_url(project, annotator) + "?gold_missed=1").content.decode()) == ["gold-1"]
    justified = client.get(page_url(project, annotator) + "?batch=&with_justification=1").content.decode()
    assert rows_of(justified) == ["plain-1"]
    in_second = client.get(page_url(project, annotator) + f"?batch={votes['two'].pk}").content.decode()
    assert rows_of(in_second) == ["later-1"]
    assert f'<option value="{votes["two"].pk}" selected>' in in_second
    # The CSV link carries the same filters.
    assert f"?batch={votes['two'].pk}&amp;format=csv" in in_second
    empty = client.get(page_url(project, annotator) + f"?batch={votes['two'].pk}&gold_missed=1").content.decode()
    assert "No judgment matches these filters." in empty


def test_the_pager_keeps_the_filters(lead, project, annotator):
    batch = BatchFactory(project=project)
    for _ in range(51):
        judge(ItemFactory(batch=batch), annotator.username, "a")
    html = browser_for(lead).get(page_url(project, annotator) + f"?batch={batch.pk}").content.decode()
    assert len(rows_of(html)) == 50 and "Page 1 of 2" in html
    assert f"?batch={batch.pk}&amp;page=2" in html
    second = browser_for(lead).get(page_url(project, annotator) + f"?batch={batch.pk}&page=2").content.decode()
    assert len(rows_of(second)) == 1


def test_the_page_has_no_inline_script_or_style(lead, project, annotator, votes):
    response = browser_for(lead).get(page_url(project, annotator))
    assert "script-src 'self'" in response["Content-Security-Policy"]
    html = response.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'src="' in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), "inline script content"
    # Inside tags only: the hostile justification is on the page as escaped text, "onerror=" included.
    assert not re.search(r"<[^>]*\son[a-z]+\s*=[^>]*>", html, re.I), "inline event handler"
    assert not re.search(r"<[^>]*\sstyle\s*=[^>]*>", html, re.I), "inline style attribute"
    assert "<style" not in html


def test_only_leads_open_it(project, annotator, ml_engineer, stranger, lead, votes):
    url = page_url(project, annotator)
    assert browser_for(annotator).get(url).status_code == 403
    assert browser_for(ml_engineer).get(url).status_code == 403
    assert browser_for(stranger).get(url).status_code == 404
    assert Client().get(url).status_code == 302
    assert browser_for(lead).get(page_url(project, stranger)).status_code == 404  # no judgment here


def test_the_annotator_page_links_to_the_drilldown_and_the_dashboard_to_the_runs(lead, project, annotator, votes):
    client = browser_for(lead)
    html = client.get(f"/lead/projects/{project.pk}/annotators/{annotator.pk}/").content.decode()
    assert f'href="{page_url(project, annotator)}"' in html
    dashboard = client.get(f"/lead/projects/{project.pk}/").content.decode()
    assert f'href="/runs/?project={project.pk}"' in dashboard
    home = client.get("/lead/").content.decode()
    assert f'href="/runs/?project={project.pk}"' in home and f'href="/projects/{project.pk}/checkpoints/"' in home


def test_the_ml_engineers_home_card_has_its_actions(ml_engineer, annotator, project):
    html = browser_for(ml_engineer).get("/").content.decode()
    assert f'href="/runs/?project={project.pk}"' in html
    assert 'href="/admin/trainer/trainingrun/start/"' in html
    assert f'href="/admin/rewards/datasetsnapshot/?project__id__exact={project.pk}"' in html
    assert browser_for(ml_engineer).get("/admin/trainer/trainingrun/start/").status_code == 200
    plain = browser_for(annotator).get("/").content.decode()
    assert "/runs/?project=" not in plain and "trainingrun/start" not in plain and "datasetsnapshot" not in plain
