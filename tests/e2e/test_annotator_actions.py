"""The annotator page's actions besides judging, in Chromium: skip, report, change the last judgment within the
window (and not after), keep a pick across a long pause, "not applicable" criteria, and the page on a phone."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from annotation.models import AnnotationSession, Assignment, Item, ItemReport, Judgment, JudgmentRevision
from annotation.services import member_add
from tests.e2e.conftest import PASSWORD, log_in, screenshot
from tests.e2e.test_annotator_page import as_shown, shown
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(transactional_db):
    project = ProjectFactory(name="Demo", gold_rate=0)
    annotator = UserFactory(username="ann", password=PASSWORD)
    member_add(project=project, username="ann", role="annotator")
    ItemFactory.create_batch(6, batch=BatchFactory(project=project, name="b1"))
    return project, annotator


def open_page(page, project):
    log_in(page, "ann")
    page.goto(f"/annotate/{project.pk}/")
    expect(page.locator("#annotator")).to_have_attribute("data-state", "item")


def current(annotator) -> Assignment:
    return Assignment.objects.filter(annotator=annotator, judged_at__isnull=True, skipped_at__isnull=True).get(
        lease_expires_at__gt=timezone.now()
    )


def test_skip_with_the_key_and_with_a_reason(page, demo):
    project, _annotator = demo
    open_page(page, project)
    first = shown(page)["assignment"]
    page.keyboard.press("k")
    expect(page.locator("#notice")).to_contain_text("Skipped")
    expect(page.locator("#annotator")).not_to_have_attribute("data-assignment", first)
    assert Assignment.objects.get(pk=first).skipped_at is not None
    second = shown(page)["assignment"]
    page.locator("#skip-reason").fill("needs medical knowledge")
    page.get_by_role("button", name="Skip").click()
    expect(page.locator("#annotator")).not_to_have_attribute("data-assignment", second)
    assert Assignment.objects.get(pk=second).skip_reason == "needs medical knowledge"
    expect(page.locator("#progress")).to_have_text("0 / 200 judged")
    expect(page.locator(".progress-wrap")).to_contain_text("This session: 0 / 200 judged")


def test_report_an_item(page, demo):
    project, _annotator = demo
    open_page(page, project)
    first = shown(page)["assignment"]
    page.keyboard.press("p")
    expect(page.locator("#report-form")).to_be_visible()
    page.get_by_role("button", name="Report and skip").click()
    expect(page.locator("#report-error")).to_contain_text("Choose what is wrong")
    page.get_by_label("Harmful content").check()
    page.locator("#report-note").fill("instructions for a weapon")
    screenshot(page, "annotator-report.png")
    page.get_by_role("button", name="Report and skip").click()
    expect(page.locator("#notice")).to_contain_text("Reported to the project's leads")
    expect(page.locator("#annotator")).not_to_have_attribute("data-assignment", first)
    expect(page.locator("#report-form")).to_be_hidden()
    report = ItemReport.objects.get()
    assert (report.kind, report.note, str(report.assignment_id)) == ("harmful", "instructions for a weapon", first)


def test_change_the_last_judgment_within_the_window_and_not_after(page, demo):
    project, _annotator = demo
    open_page(page, project)
    judged = shown(page)
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("1 / 200 judged")
    expect(page.locator("#last-judgment")).to_contain_text("Last judgment: Left is better")
    expect(page.locator("#last-judgment")).to_contain_text(re.compile(r"change it for 1:[45]\d"))
    now_showing = shown(page)
    page.keyboard.press("2")  # a pick on the current item, kept while the last one is changed

    page.keyboard.press("Backspace")
    expect(page.locator("#revise-banner")).to_be_visible()
    assert shown(page) == judged
    assert page.locator("[data-choice=left]").get_attribute("aria-pressed") == "true"
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text("your last judgment is now “Tie”")
    expect(page.locator("#revise-banner")).to_be_hidden()
    assert shown(page) == now_showing
    assert page.locator("[data-choice=right]").get_attribute("aria-pressed") == "true"
    judgment = Judgment.objects.get()
    assert str(judgment.assignment_id) == judged["assignment"] and judgment.choice == "tie"
    assert JudgmentRevision.objects.get().old_choice == judgment.shown_left  # "left" as stored
    expect(page.locator("#progress")).to_have_text("1 / 200 judged")

    # After the window the server refuses, and the page says why and goes back to the current item.
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("2 / 200 judged")
    second = Judgment.objects.order_by("created_at").last()
    Judgment.objects.filter(pk=second.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    page.keyboard.press("Backspace")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text("Not changed: Judgments can be revised for 120 seconds")
    expect(page.locator("#revise-banner")).to_be_hidden()
    expect(page.locator("#last-judgment")).to_be_hidden()
    assert as_shown(Judgment.objects.get(pk=second.pk)) == "right"


def test_the_offer_to_change_ends_with_the_window(page, demo):
    project, _annotator = demo
    project.revise_window_seconds = 3
    project.save()
    open_page(page, project)
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#last-judgment")).to_be_visible()
    expect(page.locator("#last-judgment")).to_be_hidden(timeout=6000)
    page.keyboard.press("Backspace")
    expect(page.locator("#revise-banner")).to_be_hidden()


def test_a_pick_is_kept_across_a_long_pause_and_the_lease_is_renewed_while_working(page, demo):
    project, annotator = demo
    page.clock.install()
    open_page(page, project)
    lease = current(annotator)
    # Working near the end of the lease: activity renews it, well before it lapses.
    Assignment.objects.filter(pk=lease.pk).update(lease_expires_at=timezone.now() + timedelta(seconds=90))
    page.reload()
    expect(page.locator("#annotator")).to_have_attribute("data-state", "item")
    page.mouse.move(200, 300)
    page.keyboard.press("q")
    for _ in range(40):
        if Assignment.objects.get(pk=lease.pk).lease_expires_at > timezone.now() + timedelta(minutes=5):
            break
        page.wait_for_timeout(200)
    assert Assignment.objects.get(pk=lease.pk).lease_expires_at > timezone.now() + timedelta(minutes=5)
    expect(page.locator("#lease")).to_have_text("")  # no warning while working

    # A long pause (a laptop asleep): the lease lapses with a pick made. The page says the pick is kept, and
    # Enter lets the item again, since it is still free, and stores the judgment.
    page.keyboard.press("2")
    Assignment.objects.filter(pk=lease.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=3))
    page.clock.fast_forward("12:00")
    expect(page.locator("#lease")).to_contain_text("your pick is kept")
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("1 / 200 judged")
    assert as_shown(Judgment.objects.get(assignment_id=lease.pk)) == "right"

    # When someone else took the item meanwhile, the page says the pick could not be kept.
    lease = current(annotator)
    project.overlap = 1
    project.save()
    page.keyboard.press("1")
    Assignment.objects.filter(pk=lease.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=3))
    page.clock.fast_forward("12:00")
    other = UserFactory(username="other")
    now = timezone.now()
    other_session = AnnotationSession.objects.create(
        project=project, annotator=other, started_at=now, expires_at=now + timedelta(hours=1), max_tasks=10
    )
    Assignment.objects.create(
        session=other_session,
        item=lease.item,
        annotator=other,
        left_is_a=True,
        leased_at=timezone.now(),
        lease_expires_at=timezone.now() + timedelta(minutes=10),
    )
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text("other annotators took its remaining places")
    expect(page.locator("#notice")).to_contain_text("your pick could not be kept")
    expect(page.locator("#annotator")).not_to_have_attribute("data-assignment", str(lease.pk))
    assert not Judgment.objects.filter(assignment_id=lease.pk).exists()


def test_an_idle_annotator_is_warned_before_the_lease_lapses(page, demo):
    project, annotator = demo
    page.clock.install()
    open_page(page, project)
    lease = current(annotator)
    Assignment.objects.filter(pk=lease.pk).update(lease_expires_at=timezone.now() + timedelta(seconds=230))
    page.reload()
    expect(page.locator("#annotator")).to_have_attribute("data-state", "item")
    expect(page.locator("#lease")).to_have_text("")
    # Nobody touches the page for over three minutes: it stops renewing, and warns instead.
    page.clock.fast_forward("03:10")
    expect(page.locator("#lease")).to_contain_text(re.compile(r"goes back to the pool in 0:[34]\d"))
    expect(page.locator("#lease")).to_contain_text("press a key or move the mouse to keep it")
    assert Assignment.objects.get(pk=lease.pk).lease_expires_at < timezone.now() + timedelta(minutes=4)  # not renewed
    # Back at the page: the lease is renewed and the warning goes.
    page.mouse.move(300, 300)
    page.mouse.move(320, 320)
    expect(page.locator("#lease")).to_have_text("")
    assert Assignment.objects.get(pk=lease.pk).lease_expires_at > timezone.now() + timedelta(minutes=5)


def test_criteria_have_not_applicable_and_the_pick_message_names_every_choice(page, demo):
    project, _annotator = demo
    open_page(page, project)
    page.keyboard.press("Enter")
    expect(page.locator("#form-error")).to_have_text("Pick a response first: 1 left, 2 right, 3 tie, 4 both bad.")
    row = page.locator(".dimension").first
    row.get_by_role("button", name=re.compile("not applicable")).click()
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("1 / 200 judged")
    key = Judgment.objects.get().dimensions
    assert list(key.values()) == ["na"]


def test_on_a_phone_the_stacked_panes_are_top_and_bottom_without_key_chips(browser, live_server, demo):
    project, _annotator = demo
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, base_url=live_server.url
    )
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        log_in(page, "ann")
        page.goto(f"/annotate/{project.pk}/")
        expect(page.locator("#annotator")).to_have_attribute("data-state", "item")
        # What is shown (innerText leaves out what CSS hides), and what a screen reader is told.
        assert page.locator("#left-title").inner_text().strip().lower() == "top response"
        assert page.locator("#right-title").inner_text().strip().lower() == "bottom response"
        expect(page.get_by_role("heading", name="Top response", exact=True)).to_be_visible()
        expect(page.get_by_role("button", name="Top is better", exact=True)).to_be_visible()
        expect(page.get_by_role("button", name="Bottom is better", exact=True)).to_be_visible()
        assert "left" not in page.locator("#screen-item").inner_text().lower()
        expect(page.locator("#annotator kbd").first).to_be_hidden()
        expect(page.locator("#keys-toggle")).to_be_hidden()
        page.get_by_role("button", name="Submit").tap()
        expect(page.locator("#form-error")).to_have_text("Pick a response first: top, bottom, tie, both bad.")
        screenshot(page, "annotator-phone.png")
        page.locator("[data-choice=right]").tap()
        page.get_by_role("button", name="Submit").tap()
        expect(page.locator("#progress")).to_have_text("1 / 200 judged")
        assert as_shown(Judgment.objects.get()) == "right"
        assert Item.objects.filter(judgment_count=1).count() == 1
    finally:
        context.close()
    assert errors == []
