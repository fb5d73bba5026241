"""The lead's review of demonstrations in Chromium: from the dashboard to the queue, one accepted as written, one
edited then accepted (from the keyboard), one rejected with a reason; the writer table follows, and a hostile text is
shown as text."""

import re

import pytest
from playwright.sync_api import expect

from annotation.models import Demonstration
from annotation.services import member_add
from tests.annotation.demonstration_rows import empty_demonstration_batch, prompt_item, written
from tests.e2e.conftest import PASSWORD, log_in, screenshot
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="alert(1)">Paris is the capital.'


@pytest.fixture
def queue(transactional_db):
    project = ProjectFactory(name="Writing")
    UserFactory(username="lead", password=PASSWORD)
    member_add(project=project, username="lead", role="lead")
    batch = empty_demonstration_batch(project, "week 1")
    texts = [
        "Water boils at 100 degrees Celsius at sea level.",
        HOSTILE,
        "Photosynthesis makes sugar out of light.",
    ]
    prompts = ["At what temperature does water boil?", "What is the capital of France?", "What is photosynthesis?"]
    rows = [
        written(prompt_item(batch, f"q-{n}", prompt=prompt), "wanda", text, seconds=40 + n)
        for n, (prompt, text) in enumerate(zip(prompts, texts, strict=True))
    ]
    return project, rows


def test_a_lead_accepts_edits_and_rejects(page, live_server, queue):
    project, (first, second, third) = queue
    log_in(page, "lead")
    page.goto(f"{live_server.url}/lead/projects/{project.pk}/")
    page.get_by_role("link", name="Demonstrations").click()
    page.wait_for_url("**/demonstrations/")
    cards = page.locator("article.demonstration")
    expect(cards).to_have_count(3)
    expect(cards.nth(1).locator("textarea.editor")).to_have_value(HOSTILE)  # text, never markup
    expect(cards.nth(0)).to_contain_text("At what temperature does water boil?")
    screenshot(page, "lead-demonstration-queue.png")

    # 1. Accept as written.
    cards.nth(0).get_by_role("button", name="Accept").click()
    expect(page.locator(".review-message")).to_have_text(f"Demonstration {first.pk} accepted.")
    expect(cards).to_have_count(2)

    # 2. Edit, then accept from the keyboard (Ctrl+Enter in the editor).
    editor = cards.nth(0).locator("textarea.editor")
    editor.fill("Paris is the capital of France.")
    expect(cards.nth(0).locator('button[value="accept"]')).to_have_text("Accept with edits")
    editor.press("Control+Enter")
    expect(page.locator(".review-message")).to_have_text(f"Demonstration {second.pk} accepted.")
    expect(cards).to_have_count(1)

    # 3. Reject: without a reason the browser asks for one; then "r", the reason, Enter.
    cards.nth(0).get_by_role("button", name="Reject").click()
    expect(cards).to_have_count(1)
    assert Demonstration.objects.get(pk=third.pk).status == "pending"
    page.locator("body").press("Escape")
    page.keyboard.press("r")
    expect(cards.nth(0).locator("input.reason")).to_be_focused()
    page.keyboard.type("Too vague: say what goes in and what comes out.")
    page.keyboard.press("Enter")
    expect(page.locator(".review-message")).to_have_text(f"Demonstration {third.pk} rejected.")
    expect(page.locator("#queue-empty")).to_be_visible()

    statuses = {d.pk: d for d in Demonstration.objects.all()}
    assert (statuses[first.pk].status, statuses[first.pk].edited_text) == ("accepted", "")
    assert (statuses[second.pk].status, statuses[second.pk].text, statuses[second.pk].edited_text) == (
        "accepted",
        HOSTILE,
        "Paris is the capital of France.",
    )
    assert (statuses[third.pk].status, statuses[third.pk].review_reason) == (
        "rejected",
        "Too vague: say what goes in and what comes out.",
    )
    assert {d.reviewed_by.username for d in statuses.values()} == {"lead"}

    writer = page.locator("#writer-table tbody tr")
    expect(writer).to_have_count(1)
    expect(writer.locator("th")).to_have_text("wanda")
    expect(writer.locator(".acceptance")).to_have_text(re.compile(r"67\s*%"))

    # Everything, decided: the edit beside the text as written, the reason.
    page.get_by_label("Status").select_option("all")
    page.get_by_role("button", name="Show").click()
    expect(cards).to_have_count(3)
    expect(page.locator(".edit .plain")).to_have_text("Paris is the capital of France.")
    expect(page.locator(".as-written .plain").nth(1)).to_have_text(HOSTILE)
    expect(page.locator(".reason-text")).to_have_text("Too vague: say what goes in and what comes out.")
    screenshot(page, "lead-demonstrations-reviewed.png")
