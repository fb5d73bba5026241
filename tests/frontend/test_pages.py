"""The pages through Django's test client: who may open the annotator page, what its HTML says, its CSP."""

import re
from pathlib import Path

import pytest
from django.test import Client

from annotation.services import member_add
from tests.factories import BatchFactory, ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db

STATIC = Path(__file__).resolve().parents[2] / "frontend" / "static" / "frontend"
# Words that would mean the page knows something an annotator must not: model names, the canonical
# sides, gold. The item factory's model names are "model-alpha" and "model-beta".
LEAKS = re.compile(r"model-alpha|model-beta|response_a|response_b|left_is_a|shown_left|\bgold\b|side [AB]\b", re.I)


def browser_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def annotate_url(project) -> str:
    return f"/annotate/{project.pk}/"


@pytest.fixture
def items(project):
    batch = BatchFactory(project=project, name="b1")
    ItemFactory(batch=batch, gold="a")
    return ItemFactory.create_batch(3, batch=batch)


def test_the_annotator_page_asks_anonymous_users_to_log_in(project):
    response = Client().get(annotate_url(project))
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/annotate/{project.pk}/"


def test_the_annotator_page_refuses_strangers_and_ml_engineers(stranger, ml_engineer, project):
    response = browser_for(ml_engineer).get(annotate_url(project))
    assert response.status_code == 403
    assert b"can annotate here" in response.content
    assert browser_for(stranger).get(annotate_url(project)).status_code == 404  # as for a missing project


def test_a_superuser_who_is_not_a_member_is_refused_like_the_session_api_refuses_them(superuser, project):
    assert browser_for(superuser).get(annotate_url(project)).status_code == 404


def test_an_unknown_project_is_404(annotator):
    assert browser_for(annotator).get("/annotate/999999/").status_code == 404


def test_annotators_and_leads_get_the_page(annotator, lead, project):
    for user in (annotator, lead):
        response = browser_for(user).get(annotate_url(project))
        assert response.status_code == 200
        html = response.content.decode()
        assert 'id="annotator"' in html and f'data-project-id="{project.pk}"' in html
        assert "frontend/annotate.js" in html
        # The keys are on the page, not only in a help text behind a click.
        # (On a phone the panes stack and read Top/Bottom: the wide label is one of two spans.)
        for hint in (
            '<kbd>1</kbd> <span class="side-wide">Left</span>',
            '<kbd>2</kbd> <span class="side-wide">Right</span>',
            "<kbd>j</kbd>",
            "<kbd>Enter</kbd>",
        ):
            assert hint in html


def test_the_page_sets_the_csrf_cookie_its_script_reads(annotator, project):
    response = browser_for(annotator).get(annotate_url(project))
    assert "csrftoken" in response.cookies


def test_the_page_and_its_scripts_name_no_model_no_side_and_no_gold(annotator, project, items):
    client = browser_for(annotator)
    # Lease an item first, so that if the template ever rendered item data it would be there to find.
    session = client.post(f"/api/v1/projects/{project.pk}/sessions/").json()
    assert client.get(f"/api/v1/sessions/{session['id']}/next/").status_code == 200
    html = client.get(annotate_url(project)).content.decode()
    assert not LEAKS.search(html), LEAKS.search(html)
    for item in items:
        assert item.response_a_text not in html and item.response_b_text not in html
    for script in STATIC.glob("*.js"):
        text = script.read_text()
        assert not LEAKS.search(text), (script.name, LEAKS.search(text))


def test_the_page_has_a_strict_content_security_policy(annotator, project):
    response = browser_for(annotator).get(annotate_url(project))
    directives = [part.strip().partition(" ") for part in response["Content-Security-Policy"].split(";")]
    policy = {name: value for name, _, value in directives}
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["require-trusted-types-for"] == "'script'"
    assert "unsafe" not in response["Content-Security-Policy"]


def test_the_page_needs_no_inline_script_or_style_that_its_policy_would_block(annotator, project):
    html = browser_for(annotator).get(annotate_url(project)).content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'src="' in tag, tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), "inline script content"
    assert not re.search(r"\son[a-z]+\s*=", html, re.I), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html, re.I), "inline style attribute"
    assert "<style" not in html and "javascript:" not in html


def test_the_page_script_never_writes_html_strings(annotator):
    for script in STATIC.glob("*.js"):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, (script.name, sink)


def test_the_session_api_works_with_the_browsers_session_login(annotator, project, items):
    """The page authenticates with Django's session cookie, where request.user is a lazy object."""
    client = browser_for(annotator)
    started = client.post(f"/api/v1/projects/{project.pk}/sessions/")
    assert started.status_code == 201
    assert client.post(f"/api/v1/projects/{project.pk}/sessions/").status_code == 200


def test_home_lists_the_users_projects_with_start_only_where_they_annotate(annotator, project):
    other = ProjectFactory(name="Other")
    member_add(project=other, username=annotator.username, role="ml_engineer")
    ProjectFactory(name="Not mine")
    response = browser_for(annotator).get("/")
    html = response.content.decode()
    assert "Demo" in html and "Other" in html and "Not mine" not in html
    assert f'href="/annotate/{project.pk}/"' in html
    assert f'href="/annotate/{other.pk}/"' not in html
    assert "Content-Security-Policy" in response.headers


def test_home_invites_anonymous_users_to_log_in():
    html = Client().get("/").content.decode()
    assert 'href="/accounts/login/"' in html and "/annotate/" not in html


def test_login_page_has_the_strict_csp(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
