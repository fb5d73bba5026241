"""The API docs and the admin in Chromium under their Content-Security-Policy: Swagger UI and Redoc render the
schema from our own static files, and neither they nor the admin's pages trip a CSP refusal (the page fixture
fails the test on any console error, a refused script, style, image or worker included)."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, screenshot

pytestmark = pytest.mark.browser


def _answered(page) -> list[str]:
    """The URL of every answer the page got (a request the CSP refused gets none)."""
    seen = []
    page.on("response", lambda response: seen.append(response.url))
    return seen


def test_swagger_ui_renders_the_schema_with_no_csp_refusal(page, annotator, live_server):
    answered = _answered(page)
    log_in(page, annotator.username)
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Tandem API")
    operation = page.locator(".opblock-summary-path", has_text="/api/v1/sessions/{session_id}/next/").first
    expect(operation).to_be_visible()
    operation.click()  # opening an operation renders its parameters and schemas
    expect(page.locator(".opblock-body").first).to_be_visible()
    screenshot(page, "api-docs-swagger.png")
    assert [url for url in answered if not url.startswith((live_server.url, "blob:"))] == []


def test_redoc_renders_the_schema_with_no_csp_refusal(page, annotator, live_server):
    # Redoc's sidebar credit loads its logo from Redocly's CDN, with no option to turn it off: the CSP refuses it
    # (the console says so), and nothing else.
    page.problems.allow(r"image 'https://cdn\.redoc\.ly/redoc/logo-mini\.svg' violates")
    answered = _answered(page)
    log_in(page, annotator.username)
    page.goto("/api/redoc/")
    expect(page.locator("h1", has_text="Tandem API")).to_be_visible(timeout=15000)
    expect(page.get_by_text("/api/v1/sessions/{session_id}/next/").first).to_be_attached()
    screenshot(page, "api-docs-redoc.png")
    assert [url for url in answered if not url.startswith((live_server.url, "blob:"))] == []


def test_the_admin_works_under_its_policy(page, superuser, project):
    log_in(page, superuser.username)
    page.goto("/admin/")
    expect(page.locator("#site-name")).to_be_visible()
    page.goto("/admin/annotation/project/")
    expect(page.locator("#result_list")).to_be_visible()
    page.locator("#action-toggle").check()  # the changelist's script (actions.js) runs
    expect(page.locator(".action-counter")).to_contain_text(re.compile(r"1 of 1 selected"))
    page.goto(f"/admin/annotation/project/{project.pk}/change/")
    expect(page.locator("#project_form")).to_be_visible()
