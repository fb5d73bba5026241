"""The annotator page in Chromium: log in, judge with the keyboard, reload, reach the limit, take the break."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from annotation.models import AnnotationSession, Assignment, Item, Judgment
from annotation.services import member_add
from tests.e2e.conftest import PASSWORD, log_in, screenshot
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(transactional_db):
    project = ProjectFactory(name="Demo", session_max_tasks=6, break_minutes=10, gold_rate=0)
    annotator = UserFactory(username="ann", password=PASSWORD)
    member_add(project=project, username="ann", role="annotator")
    batch = BatchFactory(project=project, name="b1")
    ItemFactory.create_batch(9, batch=batch)
    return project, annotator


def shown(page) -> dict:
    return {
        "assignment": page.locator("#annotator").get_attribute("data-assignment"),
        "prompt": page.locator("#prompt").inner_text(),
        "left": page.locator("#left").inner_text(),
        "right": page.locator("#right").inner_text(),
    }


def pressed(page, selector: str) -> str | None:
    return page.locator(selector).get_attribute("aria-pressed")


def judge(page, keys: list[str], *, done: int, total: int = 6) -> None:
    before = shown(page)["assignment"]
    for key in keys:
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text(f"{done} / {total} judged")
    if done < total:
        expect(page.locator("#annotator")).not_to_have_attribute("data-assignment", before)
        expect(page.locator("#annotator")).to_have_attribute("data-state", "item")


def as_shown(judgment: Judgment) -> str:
    """The choice as the annotator saw it, from the canonical A/B the server stored."""
    if judgment.choice in ("tie", "both_bad"):
        return judgment.choice
    return "left" if judgment.choice == judgment.shown_left else "right"


def test_an_annotator_judges_with_the_keyboard_reloads_and_reaches_the_break(page, demo):
    project, annotator = demo
    log_in(page, "ann")
    page.get_by_role("link", name="Start annotating Demo").click()
    page.wait_for_url(f"**/annotate/{project.pk}/")
    expect(page.locator("#annotator")).to_have_attribute("data-state", "item")
    expect(page.locator("#progress")).to_have_text("0 / 6 judged")
    expect(page.locator("#clock")).to_have_text(re.compile(r"^1:(29|30):\d\d left$"))
    # The keys are on the page: choices, each criterion's row, the justification box, submit.
    expect(page.locator("[data-choice=left] kbd")).to_have_text("1")
    expect(page.locator("[data-choice=both_bad]")).to_be_visible()
    expect(page.locator(".dimension").first).to_contain_text("Harmlessness")
    expect(page.locator(".dimension kbd")).to_have_text(["q", "w", "e", "a", "s", "d", "z", "x", "c"])

    # 1: left, harmlessness left, a justification typed after j and left with Escape, Enter submits.
    page.keyboard.press("1")
    page.keyboard.press("q")
    page.keyboard.press("j")
    expect(page.locator("#justification")).to_be_focused()
    page.keyboard.type("Left answers the question; right rambles.")
    page.keyboard.press("Escape")
    expect(page.locator("#justification")).not_to_be_focused()
    expect(page.locator("#justification")).to_have_value("Left answers the question; right rambles.")
    assert pressed(page, "[data-choice=left]") == "true"
    assert pressed(page, "[data-dimension=harmlessness][data-value=left]") == "true"
    screenshot(page, "annotator-page.png")
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("1 / 6 judged")
    # A new item starts clean.
    expect(page.locator("#justification")).to_have_value("")
    assert pressed(page, "[data-choice=left]") == "false"

    judge(page, ["2", "s", "c"], done=2)  # right; honesty right, helpfulness tie
    judge(page, ["3"], done=3)  # tie
    judge(page, ["4"], done=4)  # both bad
    judge(page, ["1", "w", "w"], done=5)  # left; the same criterion key twice takes the answer back

    # A reload mid-item: the server hands back the same open lease, the same texts on the same sides.
    page.keyboard.press("2")
    before = shown(page)
    page.reload()
    expect(page.locator("#annotator")).to_have_attribute("data-state", "item")
    assert shown(page) == before
    expect(page.locator("#progress")).to_have_text("5 / 6 judged")

    # The sixth judgment is the session's last: the break screen counts down from the server's retry_after.
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#annotator")).to_have_attribute("data-state", "break")
    expect(page.locator("[data-screen=break]")).to_be_visible()
    expect(page.locator("[data-screen=break]")).to_contain_text("You judged 6 items in your last session.")
    countdown = page.locator("#break-countdown")
    expect(countdown).to_have_text(re.compile(r"^(10:00|9:5\d)$"))
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first, timeout=3000)
    expect(page.locator("#break-retry")).to_be_disabled()
    expect(page.locator("#progress")).to_have_text("6 / 6 judged")
    screenshot(page, "annotator-break.png")

    judgments = list(Judgment.objects.filter(annotator=annotator).order_by("created_at"))
    assert [as_shown(j) for j in judgments] == ["left", "right", "tie", "both_bad", "left", "right"]
    assert judgments[0].justification == "Left answers the question; right rambles."
    assert judgments[0].dimensions == {"harmlessness": judgments[0].shown_left}
    assert judgments[1].dimensions == {"honesty": "b" if judgments[1].shown_left == "a" else "a", "helpfulness": "tie"}
    assert judgments[4].dimensions == {}

    # When the break is over the page starts the next session by itself.
    session = AnnotationSession.objects.get(annotator=annotator)
    AnnotationSession.objects.filter(pk=session.pk).update(
        ended_at=timezone.now() - timedelta(minutes=project.break_minutes) + timedelta(seconds=2)
    )
    page.reload()
    expect(page.locator("#annotator")).to_have_attribute("data-state", "break")
    expect(countdown).to_have_text(re.compile(r"^0:0[0-3]$"))
    expect(page.locator("#annotator")).to_have_attribute("data-state", "item", timeout=6000)
    expect(page.locator("#progress")).to_have_text("0 / 6 judged")
    assert AnnotationSession.objects.filter(annotator=annotator).count() == 2


def test_nothing_left_to_judge_and_a_lease_that_expired(page, demo):
    project, annotator = demo
    log_in(page, "ann")
    page.goto(f"/annotate/{project.pk}/")
    expect(page.locator("#annotator")).to_have_attribute("data-state", "item")
    # The lease runs out while the annotator is reading and someone else takes the item's last place: their
    # judgment is refused and the next item comes. (A pick on an item still free is kept: test_annotator_actions.)
    Assignment.objects.filter(annotator=annotator).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    Item.objects.filter(assignments__annotator=annotator).update(judgment_count=project.overlap)
    before = shown(page)["assignment"]
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text("went back to the pool")
    expect(page.locator("#annotator")).not_to_have_attribute("data-assignment", before)
    expect(page.locator("#progress")).to_have_text("0 / 6 judged")
    # Everything else is taken by others: nothing left.
    Item.objects.filter(project=project).update(judgment_count=project.overlap)
    Assignment.objects.filter(annotator=annotator).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    page.reload()
    expect(page.locator("#annotator")).to_have_attribute("data-state", "done")
    expect(page.get_by_role("heading", name="Nothing left to judge")).to_be_visible()


def test_a_stranger_sees_a_refusal_and_anonymous_users_the_login_form(page, demo):
    project, _ = demo
    page.goto(f"/annotate/{project.pk}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    UserFactory(username="stranger", password=PASSWORD)
    log_in(page, "stranger")
    expect(page.get_by_text("You are not a member of any project yet.")).to_be_visible()
    # No role in the project: the page answers as for a missing project (docs/SECURITY.md).
    page.problems.allow(r"status of 404 .*/annotate/")
    response = page.goto(f"/annotate/{project.pk}/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_only_the_offered_choices_have_keys_and_a_required_justification_is_asked_for(page, transactional_db):
    project = ProjectFactory(
        name="Strict", allow_tie=False, allow_both_bad=False, require_justification=True, gold_rate=0
    )
    UserFactory(username="ann", password=PASSWORD)
    member_add(project=project, username="ann", role="lead")  # leads annotate too
    ItemFactory.create_batch(2, batch=BatchFactory(project=project, name="b1"))
    log_in(page, "ann")
    page.get_by_role("link", name="Start annotating Strict").click()
    expect(page.locator("#annotator")).to_have_attribute("data-state", "item")
    expect(page.locator("[data-choice=tie]")).to_be_hidden()
    expect(page.locator("[data-choice=both_bad]")).to_be_hidden()
    expect(page.locator("#justification-required")).to_be_visible()
    page.keyboard.press("3")
    page.keyboard.press("4")
    assert page.locator("[aria-pressed=true]").count() == 0

    page.keyboard.press("Enter")
    expect(page.locator("#form-error")).to_contain_text("Pick a response first: 1 left, 2 right.")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#form-error")).to_contain_text("asks for a justification")
    expect(page.locator("#justification")).to_be_focused()
    page.keyboard.type("Right is correct.")
    page.keyboard.press("Enter")  # a new line inside the box, not a submit
    page.keyboard.type("Left is not.")
    expect(page.locator("#progress")).to_have_text("0 / 200 judged")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#progress")).to_have_text("1 / 200 judged")
    judgment = Judgment.objects.get()
    assert judgment.justification == "Right is correct.\nLeft is not."
    assert as_shown(judgment) == "right"

    # The keys are listed on demand too.
    page.keyboard.press("?")
    expect(page.locator("#keys-help")).to_be_visible()
    expect(page.locator("#keys-help")).to_contain_text("Both bad")
    page.keyboard.press("Escape")
    expect(page.locator("#keys-help")).to_be_hidden()
