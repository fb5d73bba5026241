"""The writing page in Chromium: from the home page's "Write demonstrations", an annotator reads the prompt and the
guidelines, writes with a live preview through the page's safe markdown renderer and a live counter, reloads mid-draft
and finds the draft kept, sends with Ctrl+Enter, and gets the next prompt; skip and report as on comparison pages."""

import pytest
from playwright.sync_api import expect

from annotation.models import Assignment, Demonstration, ItemReport
from annotation.services import member_add
from tests.annotation.demonstration_fixtures import demonstration_batch
from tests.e2e.conftest import PASSWORD, log_in, screenshot
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

DRAFT = (
    "# Recursion\n\n"
    "A function that calls **itself** on a smaller input, with `n - 1`.\n\n"
    "- a base case\n"
    "- a step <script>alert(1)</script>"
)


@pytest.fixture
def writing(transactional_db):
    project = ProjectFactory(
        name="Writing",
        description="Answer as a patient teacher would.",
        demonstration_min_chars=30,
        demonstration_max_chars=400,
        gold_rate=0,
    )
    annotator = UserFactory(username="ann", password=PASSWORD)
    member_add(project=project, username="ann", role="annotator")
    batch = demonstration_batch(project, prompts=4)
    ItemFactory.create_batch(2, batch=BatchFactory(project=project, name="pairs"))  # comparison work beside it
    return project, annotator, batch


def shown_assignment(page) -> str:
    return page.locator("#writer").get_attribute("data-assignment")


def draft_in_storage(page, assignment_id: str):
    return page.evaluate("(key) => localStorage.getItem(key)", f"tandem:draft:{assignment_id}")


def test_write_reload_mid_draft_send_and_get_the_next_prompt(page, writing):
    _project, annotator, batch = writing
    log_in(page, "ann")
    expect(page.get_by_role("link", name="Start annotating Writing")).to_be_visible()
    page.get_by_role("link", name="Write demonstrations for Writing").click()
    expect(page.locator("#writer")).to_have_attribute("data-state", "item")
    expect(page.locator("#progress")).to_have_text("0 / 200 written")
    first = shown_assignment(page)
    item = Assignment.objects.get(pk=first).item
    assert item.batch_id == batch.pk
    expect(page.locator("#prompt")).to_have_text(item.prompt)
    expect(page.locator("#guidelines")).to_contain_text("Answer as a patient teacher would.")
    expect(page.locator("#guidelines")).to_contain_text("Honesty")
    expect(page.locator("#guidelines-version")).to_have_text(f"· criteria v{batch.criteria_version.number}")
    expect(page.locator("#draft")).to_be_focused()

    # Too short: the counter says so and the server is not asked.
    page.keyboard.type("Too short.")
    expect(page.locator("#counter")).to_have_text("10 / 400 characters (at least 30)")
    expect(page.locator("#counter")).to_have_class("counter short")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#form-error")).to_contain_text("Write at least 30 characters")
    assert not Demonstration.objects.exists()

    # The draft, previewed live through the same renderer as responses: markdown understood, HTML left as text.
    page.locator("#draft").fill(DRAFT)
    preview = page.locator("#preview")
    expect(preview.locator("strong")).to_have_text("itself")
    expect(preview.locator("code")).to_have_text("n - 1")
    expect(preview.locator("li")).to_have_count(2)
    expect(preview).to_contain_text("<script>alert(1)</script>")
    assert preview.locator("script").count() == 0
    expect(page.locator("#counter")).to_have_text(f"{len(DRAFT)} / 400 characters (at least 30)")
    expect(page.locator("#draft-state")).to_have_text("Draft saved in this browser.")
    assert draft_in_storage(page, first) == DRAFT
    screenshot(page, "writer-page.png")

    # A reload mid-draft: the same prompt, the draft kept.
    page.reload()
    expect(page.locator("#writer")).to_have_attribute("data-state", "item")
    assert shown_assignment(page) == first
    expect(page.locator("#draft")).to_have_value(DRAFT)
    expect(page.locator("#draft-state")).to_have_text("Draft restored from this browser.")
    expect(page.locator("#preview").locator("li")).to_have_count(2)

    # Ctrl+Enter from the editor sends it; the next prompt comes with an empty editor.
    page.locator("#draft").focus()
    page.keyboard.press("End")
    page.keyboard.type("\nDone.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#progress")).to_have_text("1 / 200 written")
    expect(page.locator("#writer")).not_to_have_attribute("data-assignment", first)
    expect(page.locator("#writer")).to_have_attribute("data-state", "item")
    expect(page.locator("#draft")).to_have_value("")
    expect(page.locator("#notice")).to_contain_text("Sent")
    stored = Demonstration.objects.get()
    assert (stored.text, stored.writer, str(stored.assignment_id)) == (DRAFT + "\nDone.", annotator, first)
    assert draft_in_storage(page, first) is None
    second = shown_assignment(page)
    assert Assignment.objects.get(pk=second).item.batch_id == batch.pk
    assert Assignment.objects.get(pk=second).item_id != item.pk


def test_skip_and_report_a_prompt(page, writing):
    project, _annotator, _batch = writing
    log_in(page, "ann")
    page.goto(f"/annotate/{project.pk}/write/")
    expect(page.locator("#writer")).to_have_attribute("data-state", "item")
    first = shown_assignment(page)
    page.locator("#draft").fill("Half a thought that I will not finish.")
    page.locator("#skip-reason").fill("not my field")
    page.get_by_role("button", name="Skip this prompt").click()
    expect(page.locator("#writer")).not_to_have_attribute("data-assignment", first)
    expect(page.locator("#notice")).to_contain_text("Skipped")
    assert Assignment.objects.get(pk=first).skip_reason == "not my field"
    assert draft_in_storage(page, first) is None
    expect(page.locator("#draft")).to_have_value("")

    second = shown_assignment(page)
    page.get_by_role("button", name="Report this prompt").click()
    page.get_by_label("Harmful content").check()
    page.locator("#report-note").fill("asks for something dangerous")
    page.get_by_role("button", name="Report and skip").click()
    expect(page.locator("#writer")).not_to_have_attribute("data-assignment", second)
    report = ItemReport.objects.get()
    assert (report.kind, report.note, str(report.assignment_id)) == ("harmful", "asks for something dangerous", second)
    assert not Demonstration.objects.exists()


def test_nothing_left_to_write(page, writing):
    project, _annotator, batch = writing
    batch.items.update(judgment_count=1)
    log_in(page, "ann")
    page.goto(f"/annotate/{project.pk}/write/")
    expect(page.locator("#writer")).to_have_attribute("data-state", "done")
    expect(page.get_by_role("heading", name="Nothing left to write")).to_be_visible()
