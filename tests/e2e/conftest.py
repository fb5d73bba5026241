"""Browser fixtures: Debian's Chromium driven by Playwright's sync API against pytest-django's live server.

Chromium comes from the system (`apt-get install chromium`), never from Playwright's own download. When it is
missing the browser tests fail, so a CI without a browser cannot pass by skipping them; a developer who means
to go without sets TANDEM_SKIP_BROWSER=1.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TANDEM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RESULTS = Path(__file__).resolve().parents[2] / "test-results"
PASSWORD = "pw-for-tests"

# Answers the page expects and handles, which Chromium still logs as failed loads; anything else is an error.
_EXPECTED_FAILED_LOAD = re.compile(r"the server responded with a status of (409|410|429)\b")


@pytest.fixture(scope="module")
def browser():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
        if os.environ.get("TANDEM_SKIP_BROWSER") == "1":
            pytest.skip(f"TANDEM_SKIP_BROWSER=1 and no Chromium at {CHROMIUM}")
        pytest.fail(f"No Chromium at {CHROMIUM}: apt-get install -y chromium (or set TANDEM_SKIP_BROWSER=1)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; Django would take the ORM calls the tests make
    # in between for calls from async code. Allowed for the browser tests only, and put back afterwards.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class PageProblems:
    """Everything the page said went wrong: JavaScript errors, console errors, dialogs."""

    def __init__(self):
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.allowed: list[re.Pattern] = []

    def allow(self, pattern: str) -> None:
        """A console error this test provokes on purpose (matched against "text (url)")."""
        self.allowed.append(re.compile(pattern))

    def on_console(self, message):
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        if "/api/v1/" in url and _EXPECTED_FAILED_LOAD.search(message.text):
            return
        line = f"{message.text} ({url})"
        if not any(pattern.search(line) for pattern in self.allowed):
            self.errors.append(f"console: {line}")

    def on_dialog(self, dialog):
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


@pytest.fixture
def page(browser, live_server, transactional_db):
    context = browser.new_context(viewport={"width": 1360, "height": 860}, base_url=live_server.url)
    context.set_default_timeout(8000)
    page = context.new_page()
    problems = PageProblems()
    page.on("console", problems.on_console)
    page.on("pageerror", lambda error: problems.errors.append(f"pageerror: {error}"))
    page.on("dialog", problems.on_dialog)
    page.problems = problems
    yield page
    context.close()
    assert problems.errors == [], problems.errors
    assert problems.dialogs == [], problems.dialogs


def log_in(page, username: str, password: str = PASSWORD) -> None:
    """Through the login form, as a person would."""
    page.goto("/")
    page.get_by_role("link", name="Log in").first.click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))


def screenshot(page, name: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    page.screenshot(path=str(path), full_page=False)
    return path
