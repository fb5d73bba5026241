"""Model output is untrusted: in Chromium, hostile prompts and responses show as literal text and run nothing.

Each payload that could execute would also set window.__pwned or open a dialog; the page fixture fails the
test on any dialog, JavaScript error or console error (a CSP refusal included, which would mean the first
line of defence, text-only rendering, had let HTML through).
"""

import pytest
from playwright.sync_api import expect

from annotation.services import member_add
from tests.e2e.conftest import PASSWORD, log_in, screenshot
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<script>alert(1)</script>",
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=alert(1)>",
    "<img src=x onerror=\"window.__pwned='img'\">",
    "[click](javascript:alert(1))",
    "[click me](javascript:window.__pwned='md-link')",
    '<a href="javascript:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    "<svg><animate onbegin=\"window.__pwned='svg'\" attributeName=x dur=1s>",
    "<iframe srcdoc=\"<script>parent.__pwned='iframe'</script>\"></iframe>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<details open ontoggle=\"window.__pwned='details'\">",
    '"><body onload=alert(1)>',
    '![img](x" onerror="alert(1))',
    "<<script>script>alert(1)<</script>/script>",
]
MARKDOWN_TRICKS = (
    "**<b>bold</b>**\n\n"
    "```\n<script>alert(2)</script>\n```\n\n"
    "```html onload=alert(1)\n<img src=x onerror=alert(1)>\n```\n\n"
    "- item <i onmouseover=alert(1)>one</i>\n- `<script>alert(3)</script>`\n\n"
    "*<u>em</u>* and _<s>under</s>_"
)
HOSTILE_ROLE = "<img src=x onerror=\"window.__pwned='role'\">"


@pytest.fixture
def hostile(transactional_db):
    project = ProjectFactory(name="Hostile", gold_rate=0, overlap=1)
    UserFactory(username="ann", password=PASSWORD)
    member_add(project=project, username="ann", role="annotator")
    batch = BatchFactory(project=project, name="b1")
    ItemFactory(
        batch=batch,
        prompt="\n\n".join(PAYLOADS),
        response_a_text="\n\n".join(PAYLOADS),
        response_b_text=MARKDOWN_TRICKS,
    )
    # Its own, later batch: batches are served oldest first, items within a batch in random order (issue 11).
    ItemFactory(
        batch=BatchFactory(project=project, name="b2"),
        prompt="",
        messages=[
            {"role": "system", "content": "<script>alert('system')</script>"},
            {"role": "user", "content": "<img src=x onerror=alert('user')>"},
            {"role": "assistant", "content": "[ok](javascript:alert('assistant'))"},
            {"role": HOSTILE_ROLE, "content": "<svg onload=alert('other')>"},
            {"role": "user", "content": "And now?"},
        ],
        response_a_text="Line one\nLine two\n\n" + "\n".join(f"long line {n}" for n in range(200)),
        response_b_text="Short <b>answer</b>.",
    )
    return project


def assert_nothing_ran(page) -> None:
    page.wait_for_timeout(300)  # long enough for an image error or an animation to fire
    assert page.evaluate("() => window.__pwned") is None
    assert page.problems.dialogs == []
    item = page.locator("#screen-item")
    assert item.locator("script, img, svg, math, iframe, a, b, i, u, s, style, details, body, table").count() == 0
    with_handlers = page.evaluate(
        """() => [...document.querySelectorAll('#screen-item *')]
                 .filter(el => [...el.attributes].some(a => a.name.startsWith('on') || a.value.includes('javascript:')))
                 .map(el => el.outerHTML.slice(0, 80))"""
    )
    assert with_handlers == []


def open_page(page, project) -> None:
    log_in(page, "ann")
    page.goto(f"/annotate/{project.pk}/")
    expect(page.locator("#annotator")).to_have_attribute("data-state", "item")


def test_hostile_prompts_and_responses_show_as_text_and_run_nothing(page, hostile):
    open_page(page, hostile)
    page.evaluate("() => { window.__pwned = undefined; }")
    panes = page.locator("#prompt, #left, #right")
    for payload in PAYLOADS:
        expect(page.locator("#prompt")).to_contain_text(payload)
    sides = {"left": page.locator("#left").inner_text(), "right": page.locator("#right").inner_text()}
    plain, tricks = ("left", "right") if "<svg onload" in sides["left"] else ("right", "left")
    for payload in PAYLOADS:
        expect(page.locator(f"#{plain}")).to_contain_text(payload)
    # The markdown subset works on the text around the payloads, and the payloads stay text inside it.
    tricky = page.locator(f"#{tricks}")
    expect(tricky.locator("strong")).to_have_text("<b>bold</b>")
    expect(tricky.locator("pre code").first).to_have_text("<script>alert(2)</script>")
    expect(tricky.locator("pre code").nth(1)).to_have_text("<img src=x onerror=alert(1)>")
    expect(tricky.locator("li")).to_have_text(["item <i onmouseover=alert(1)>one</i>", "<script>alert(3)</script>"])
    expect(tricky.locator("em")).to_have_text(["<u>em</u>", "<s>under</s>"])
    assert panes.count() == 3
    assert_nothing_ran(page)
    screenshot(page, "annotator-xss.png")

    # Judge it, and the conversation item comes next, hostile role name included.
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("1 / 200 judged")
    turns = page.locator("#prompt .turn")
    expect(turns).to_have_count(5)
    expect(page.locator("#prompt .turn-role")).to_have_text(["System", "User", "Assistant", HOSTILE_ROLE, "User"])
    expect(turns.nth(0)).to_contain_text("<script>alert('system')</script>")
    expect(turns.nth(2)).to_contain_text("[ok](javascript:alert('assistant'))")
    expect(page.locator("#left, #right").filter(has_text="Short <b>answer</b>.")).to_have_count(1)
    assert_nothing_ran(page)


def test_responses_sit_side_by_side_scroll_on_their_own_and_stack_on_a_narrow_screen(page, hostile):
    open_page(page, hostile)
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#prompt .turn")).to_have_count(5)
    left, right = page.locator("#left"), page.locator("#right")
    long_pane, short_pane = (left, right) if "long line 199" in left.inner_text() else (right, left)
    # Line breaks are kept: "Line one" and "Line two" are on two lines.
    assert "Line one\nLine two" in long_pane.inner_text()
    a, b = left.bounding_box(), right.bounding_box()
    assert abs(a["y"] - b["y"]) < 2 and b["x"] > a["x"] + a["width"] - 1, (a, b)
    # The long response scrolls in its own pane; the page and the other pane stay put.
    assert long_pane.evaluate("el => el.scrollHeight > el.clientHeight + 100")
    long_pane.evaluate("el => el.scrollTo(0, 500)")
    assert long_pane.evaluate("el => el.scrollTop") > 0
    assert short_pane.evaluate("el => el.scrollTop") == 0
    assert page.evaluate("() => window.scrollY") == 0
    # The whole judging form is on screen without scrolling the page.
    submit = page.locator("#submit").bounding_box()
    assert submit["y"] + submit["height"] <= 860

    page.set_viewport_size({"width": 700, "height": 900})
    a, b = left.bounding_box(), right.bounding_box()
    assert b["y"] >= a["y"] + a["height"] - 1, (a, b)
    assert long_pane.evaluate("el => el.scrollHeight > el.clientHeight")
    screenshot(page, "annotator-narrow.png")


CASES = [
    ("**<b>bold</b>**", '<p class="md-p"><strong>&lt;b&gt;bold&lt;/b&gt;</strong></p>'),
    (
        "```\n<script>alert(2)</script>\n```",
        '<pre class="md-code"><code>&lt;script&gt;alert(2)&lt;/script&gt;</code></pre>',
    ),
    (
        '```py" onload="x\nprint(1)\n```',
        '<pre class="md-code"><span class="md-code-lang">py"</span><code>print(1)</code></pre>',
    ),
    ("```\nnever closed <b>", '<pre class="md-code"><code>never closed &lt;b&gt;</code></pre>'),
    ("[click](javascript:alert(1))", '<p class="md-p">[click](javascript:alert(1))</p>'),
    ("![x](javascript:alert(1))", '<p class="md-p">![x](javascript:alert(1))</p>'),
    ("line one\nline two", '<p class="md-p">line one\nline two</p>'),
    ("one\n\n\ntwo", '<p class="md-p">one</p><p class="md-p">two</p>'),
    ("- one\n- **two**", '<ul class="md-list"><li>one</li><li><strong>two</strong></li></ul>'),
    ("3. c\n4. d", '<ol class="md-list" start="3"><li>c</li><li>d</li></ol>'),
    ("use `x < y` here", '<p class="md-p">use <code>x &lt; y</code> here</p>'),
    ("snake_case_name and *em*", '<p class="md-p">snake_case_name and <em>em</em></p>'),
    ("2 * 3 * 4", '<p class="md-p">2 * 3 * 4</p>'),
    ("**unclosed <i>", '<p class="md-p">**unclosed &lt;i&gt;</p>'),
    ("# Title <h1>", '<p class="md-h md-h1">Title &lt;h1&gt;</p>'),
    ("> quoted <q>", '<blockquote class="md-quote"><p class="md-p">quoted &lt;q&gt;</p></blockquote>'),
    ("&lt;script&gt; &amp;", '<p class="md-p">&amp;lt;script&amp;gt; &amp;amp;</p>'),
    ("", ""),
]


def test_the_renderer_builds_only_safe_nodes(page, hostile):
    """The renderer module itself, on the page's origin and under its policy: exact output for each case."""
    open_page(page, hostile)
    results = page.evaluate(
        """async (cases) => {
            const { renderText } = await import('/static/frontend/render.js');
            return cases.map(([text]) => {
                const box = document.createElement('div');
                box.append(renderText(text));
                return box.innerHTML;
            });
        }""",
        CASES,
    )
    assert results == [expected for _, expected in CASES]


def test_the_renderer_stays_fast_on_hostile_input(page, hostile):
    open_page(page, hostile)
    texts = ["`" * 100_000, "*" * 100_000, "_a" * 50_000, "**x " * 25_000, ("- " + "*a" * 50 + "\n") * 2000]
    elapsed = page.evaluate(
        """async (texts) => {
            const { renderText } = await import('/static/frontend/render.js');
            const start = performance.now();
            for (const text of texts) document.createElement('div').append(renderText(text));
            return performance.now() - start;
        }""",
        texts,
    )
    assert elapsed < 1500, f"rendering took {elapsed:.0f} ms"
