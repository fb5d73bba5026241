"""Qualification in Chromium: a new annotator answers the qualification set, sees "Qualification: n of N" and nothing
about any answer, then gets live items; one who fails sees the server's message and no item."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from annotation.models import Assignment, Batch, QualificationAttempt
from annotation.services import member_add
from tests.e2e.conftest import PASSWORD, log_in, screenshot
from tests.e2e.test_annotator_page import shown
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

SIZE = 3


@pytest.fixture
def demo(transactional_db):
    project = ProjectFactory(
        name="Demo", gold_rate=0, qualification_required=True, qualification_size=SIZE, qualification_threshold=0.6
    )
    annotator = UserFactory(username="ann", password=PASSWORD)
    member_add(project=project, username="ann", role="annotator")
    qualification = BatchFactory(project=project, name="qualification", kind=Batch.Kind.QUALIFICATION)
    for gold in ("a", "b", "tie", "a"):
        ItemFactory(batch=qualification, gold=gold)
    live = BatchFactory(project=project, name="live")
    ItemFactory.create_batch(3, batch=live)
    return project, annotator, qualification, live


def on_screen(annotator) -> Assignment:
    return Assignment.objects.select_related("item__batch").get(
        annotator=annotator, judged_at__isnull=True, skipped_at__isnull=True, lease_expires_at__gt=timezone.now()
    )


def key_for(assignment: Assignment, *, right: bool) -> str:
    """The key (1 left, 2 right, 3 tie) that gives the gold answer, or one that does not."""
    gold = assignment.item.gold
    if gold == "tie":
        return "3" if right else "1"
    gold_key = "1" if (gold == "a") == assignment.left_is_a else "2"
    return gold_key if right else {"1": "2", "2": "1"}[gold_key]


def answer(page, annotator, *, right: bool, last: bool = False) -> None:
    before = shown(page)["assignment"]
    page.keyboard.press(key_for(on_screen(annotator), right=right))
    page.keyboard.press("Enter")
    if not last:  # the last answer of a failed attempt leaves no item to move on to
        expect(page.locator("#annotator")).not_to_have_attribute("data-assignment", before)


def test_an_annotator_qualifies_in_the_browser_then_gets_live_items(page, demo):
    project, annotator, qualification, live = demo
    log_in(page, "ann")
    page.goto(f"/annotate/{project.pk}/")
    expect(page.locator("#annotator")).to_have_attribute("data-state", "item")
    for n, right in enumerate([True, False, True]):
        expect(page.locator("#qualification")).to_have_text(f"Qualification: {n} of {SIZE}")
        assert on_screen(annotator).item.batch_id == qualification.pk
        if n == 1:
            screenshot(page, "annotator-qualification.png")
        answer(page, annotator, right=right)
        # Nothing the page says after an answer tells whether it matched the gold.
        said = f"{page.locator('#notice').text_content()} {page.locator('#last-judgment').text_content()}".lower()
        assert not any(word in said for word in ("correct", "wrong", "gold", "score")), said
    expect(page.locator("#notice")).to_contain_text("You passed the qualification")
    expect(page.locator("#qualification")).to_be_hidden()
    assert on_screen(annotator).item.batch_id == live.pk
    answer(page, annotator, right=True)
    assert on_screen(annotator).item.batch_id == live.pk
    attempt = QualificationAttempt.objects.get()
    assert (attempt.passed, attempt.correct, attempt.size) == (True, 2, SIZE)


def test_an_annotator_who_fails_sees_why_and_no_item(page, demo):
    project, annotator, _qualification, live = demo
    page.problems.allow(r"status of 403")  # the not_qualified answer, which the page shows
    log_in(page, "ann")
    page.goto(f"/annotate/{project.pk}/")
    expect(page.locator("#annotator")).to_have_attribute("data-state", "item")
    for n in range(SIZE):
        answer(page, annotator, right=False, last=n == SIZE - 1)
    expect(page.locator("#annotator")).to_have_attribute("data-state", "not-qualified")
    expect(page.locator("#not-qualified-detail")).to_contain_text(f"score 0 of {SIZE}, needed 2")
    expect(page.locator("#qualification")).to_be_hidden()
    assert "passed" not in (page.locator("#notice").text_content() or "")
    screenshot(page, "annotator-not-qualified.png")
    page.reload()
    expect(page.locator("#annotator")).to_have_attribute("data-state", "not-qualified")
    assert not Assignment.objects.filter(annotator=annotator, item__batch=live).exists()
