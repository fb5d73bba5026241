"""Content-Security-Policy on every response (django-csp, core/middleware.py): the strict policy on our pages, the
admin's and the docs' variants with scripts still 'self' only; the API docs served from our static files and behind
login unless TANDEM_API_DOCS_PUBLIC."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return dict([*part.strip().split(" ", 1), ""][:2] for part in header.split(";"))


def assert_scripts_self_only(response) -> dict[str, str]:
    directives = policy(response)
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    return directives


def test_our_pages_get_the_strict_policy_with_trusted_types(client, annotator):
    for url in ("/accounts/login/", "/"):
        directives = assert_scripts_self_only(client.get(url))
        assert directives["style-src"] == "'self'"
        assert directives["require-trusted-types-for"] == "'script'" and directives["trusted-types"] == "'none'"
    client.force_login(annotator)
    assert "require-trusted-types-for" in policy(client.get("/"))


def test_errors_and_redirects_carry_it_too(client):
    assert_scripts_self_only(client.get("/no-such-page/"))
    assert_scripts_self_only(client.get("/runs/"))  # a redirect to the login page


def test_the_admin_gets_the_policy_without_trusted_types(superuser, client):
    client.force_login(superuser)
    for url in ("/admin/", "/admin/annotation/project/", "/admin/login/"):
        response = client.get(url, follow=False)
        assert response.status_code in (200, 302)
        directives = assert_scripts_self_only(response)
        assert "require-trusted-types-for" not in directives
        assert "unsafe-inline" not in response["Content-Security-Policy"]


def test_the_api_answers_carry_it(annotator_client):
    response = annotator_client.get("/api/v1/projects/")
    assert response.status_code == 200
    assert_scripts_self_only(response)
    assert_scripts_self_only(Client().get("/api/v1/projects/"))  # a 401/403 as well


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_the_docs_load_only_our_static_files_and_no_inline_script(client, annotator, url):
    client.force_login(annotator)
    response = client.get(url)
    assert response.status_code == 200
    directives = assert_scripts_self_only(response)
    assert directives["worker-src"] == "'self' blob:"  # Redoc's worker
    # Redoc's CSS-in-JS writes <style> elements; Swagger UI needs no inline style at all.
    assert directives["style-src"] == ("'self' 'unsafe-inline'" if url == "/api/redoc/" else "'self'")
    html = response.content.decode()
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I), "a URL to another origin"
    assert "<style" not in html and not re.search(r"\sstyle\s*=", html)
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    static = [a for a in assets if a.startswith("/static/")]
    assert static and all(a.startswith("/static/") or a.startswith(url) for a in assets), assets
    for asset in static:
        assert finders.find(asset.removeprefix("/static/")), asset  # served by us, from a pinned package


def test_the_swagger_start_up_script_is_a_file_of_its_own(client, annotator):
    client.force_login(annotator)
    script = client.get("/api/docs/?script")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content and b"/api/schema/" in script.content


def test_the_docs_need_a_login_by_default(client, annotator_client, settings):
    assert settings.TANDEM_API_DOCS_PUBLIC is False
    for url in ("/api/docs/", "/api/redoc/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={url}"
    assert client.get("/api/schema/").status_code in (401, 403)
    assert annotator_client.get("/api/schema/").status_code == 200  # a token will do for the schema


def test_the_docs_may_be_made_public(client, settings):
    settings.TANDEM_API_DOCS_PUBLIC = True
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/redoc/").status_code == 200
    assert client.get("/api/schema/").status_code == 200


def test_the_kept_policy_is_the_one_django_csp_builds(settings):
    """The middleware builds each path's policy once; it must be what django-csp builds for that path, and a view's
    own policy (django-csp's decorators) or a nonce still gets a policy built for it."""
    from csp.decorators import csp_update
    from csp.utils import build_policy
    from django.http import HttpResponse
    from django.test import RequestFactory

    from core.middleware import ContentSecurityPolicyMiddleware, _override_for

    middleware = ContentSecurityPolicyMiddleware(lambda request: HttpResponse("ok"))
    for path in ("/annotate/1/", "/admin/", "/api/v1/projects/", "/api/redoc/"):
        for _ in range(2):  # built, then kept
            response = middleware(RequestFactory().get(path))
            assert response["Content-Security-Policy"] == build_policy(replace=_override_for(path)), path
    own = ContentSecurityPolicyMiddleware(csp_update({"img-src": ["https://example.org"]})(lambda r: HttpResponse()))
    assert "https://example.org" in own(RequestFactory().get("/annotate/1/"))["Content-Security-Policy"]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'self'"]}}
    assert middleware(RequestFactory().get("/annotate/1/"))["Content-Security-Policy"] == "default-src 'self'"
