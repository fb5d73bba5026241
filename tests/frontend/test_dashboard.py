"""The lead's pages through Django's test client: who may open them, that they show the stored snapshot's figures
(and never compute one), nulls with their reason, escaped model text on the split-items page, the header link."""

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from annotation.models import Judgment
from annotation.services import member_add
from rewards.models import AgreementSnapshot
from rewards.selectors import snapshot_summary
from rewards.services.snapshots import snapshot_compute
from tests.factories import BatchFactory, ItemFactory, ProjectFactory, UserFactory
from tests.rewards.judging import judge, judge_items

pytestmark = pytest.mark.django_db

STATIC = Path(__file__).resolve().parents[2] / "frontend" / "static" / "frontend"
HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def browser_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def dashboard_url(project) -> str:
    return f"/lead/projects/{project.pk}/"


@pytest.fixture
def judged(project, lead):
    """Two batches: b1 judged by three annotators and snapshotted, b2 with items and judgments but no snapshot."""
    b1 = BatchFactory(project=project, name="b1")
    judge_items(
        b1,
        {
            "ann1": ["a", "a", "b", "b", "a", "tie", "a", "b"],
            "ann2": ["a", "a", "b", "a", "a", "tie", "b", "b"],
            "ann3": ["a", "b", "b", "b", "a", "tie", "a", "a"],
        },
    )
    gold = ItemFactory(batch=b1, gold="a")
    for username in ("ann1", "ann2", "ann3"):
        judge(gold, username, "a" if username != "ann3" else "b")
    ItemFactory.create_batch(2, batch=b1)  # not judged yet: the batch is not complete
    snapshot = snapshot_compute(batch=b1)
    b2 = BatchFactory(project=project, name="b2")
    judge_items(b2, {"ann1": ["a", "b"], "ann2": ["a", "b"]})
    return b1, b2, snapshot


def test_anonymous_users_are_sent_to_log_in(project):
    for url in ("/lead/", dashboard_url(project), f"{dashboard_url(project)}split-items/"):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={url}"


def test_annotators_ml_engineers_get_403_and_strangers_404(project, annotator, ml_engineer, stranger, lead, judged):
    member = judged[2].report["annotators"][0]["annotator"]
    urls = [
        "/lead/",
        dashboard_url(project),
        f"{dashboard_url(project)}annotators/{member}/",
        f"{dashboard_url(project)}split-items/",
    ]
    for user in (annotator, ml_engineer, stranger):
        client = browser_for(user)
        for url in urls:
            # Someone with no role in the project meets a 404, as for a missing project (no existence oracle).
            want = 404 if user == stranger and url != "/lead/" else 403
            assert client.get(url).status_code == want, (user.username, url)


def test_a_lead_of_another_project_is_refused(project, judged):
    other = ProjectFactory(name="Other")
    UserFactory(username="other-lead")
    member_add(project=other, username="other-lead", role="lead")
    client = browser_for(UserFactory(username="other-lead"))
    assert client.get("/lead/").status_code == 200
    assert client.get(dashboard_url(project)).status_code == 404
    assert client.get(dashboard_url(other)).status_code == 200


def test_the_lead_sees_the_stored_figures_of_each_batch(lead, project, judged):
    b1, b2, snapshot = judged
    summary = snapshot_summary(batch=b1, snapshot=snapshot)
    response = browser_for(lead).get(dashboard_url(project))
    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(rf'<tr[^>]*data-batch="{b1.pk}".*?</tr>', html, re.S).group(0)
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    items, judgments, complete, kappa, alpha, fleiss, agreement, gold, _flags = cells
    assert items == "11"  # 8 + the gold item + 2 not judged yet
    assert judgments == str(summary["judgments"]) == "27"
    assert complete == "80 %"  # 8 of the 10 regular items have the project's 3 judgments
    assert kappa == f"{summary['cohen_kappa']:.2f}"
    assert alpha == f"{summary['krippendorff_alpha']:.2f}"
    assert fleiss == f"{summary['fleiss_kappa']:.2f}"
    assert agreement == f"{100 * summary['agreement']:.0f} %"
    assert gold == f"{100 * summary['gold_accuracy']:.0f} %" == "67 %"
    # The exact value is in the tooltip.
    assert f'title="{summary["cohen_kappa"]:.4f}, n = ' in row
    # b2 has no snapshot: its row says so and its figures are dashes with the reason.
    row2 = re.search(rf'<tr[^>]*data-batch="{b2.pk}".*?</tr>', html, re.S).group(0)
    assert "not computed yet" in row2
    assert row2.count('title="No snapshot of this batch yet."') >= 5
    # The charts get the same numbers through json_script, and the CSV links are the API's.
    data = json.loads(
        re.search(r'<script id="dashboard-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    )
    assert [b["name"] for b in data["batches"]] == ["b1"]
    assert data["batches"][0]["cohen_kappa"] == summary["cohen_kappa"]
    assert {p["username"] for p in data["annotators"]} == {"ann1", "ann2", "ann3"}
    assert data["thresholds"] == {"kappa_warn": 0.6, "kappa_alarm": 0.4}
    assert f'href="/api/v1/projects/{project.pk}/agreement/?format=csv"' in html
    assert f'href="/api/v1/projects/{project.pk}/agreement/annotators/?format=csv"' in html
    assert 'id="not-computed"' not in html  # the page-wide notice is only for a project with no snapshot at all


def test_complete_counts_regular_items_with_every_judgment_they_want(lead, project, judged):
    b1, _, _ = judged
    # Adaptive overlap asked one more judgment of a split item: it is not complete until it has it.
    item = b1.items.filter(gold="", judgment_count=3).first()
    item.extra_judgments = 1
    item.save(update_fields=["extra_judgments"])
    html = browser_for(lead).get(dashboard_url(project)).content.decode()
    row = re.search(rf'<tr[^>]*data-batch="{b1.pk}".*?</tr>', html, re.S).group(0)
    assert 'title="7 of 10 regular items complete"' in row and ">70 %<" in row


def test_the_dashboard_reads_snapshots_and_never_computes(lead, project, judged, django_assert_max_num_queries):
    client = browser_for(lead)
    before = list(AgreementSnapshot.objects.values_list("pk", "computed_at"))
    with django_assert_max_num_queries(12):
        assert client.get(dashboard_url(project)).status_code == 200
    assert list(AgreementSnapshot.objects.values_list("pk", "computed_at")) == before


def test_a_project_without_snapshots_says_not_computed_yet(lead, project):
    batch = BatchFactory(project=project, name="fresh")
    judge_items(batch, {"ann1": ["a", "b"], "ann2": ["a", "a"]})
    response = browser_for(lead).get(dashboard_url(project))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="not-computed"' in html and "Agreement is not computed yet" in html
    assert "not computed yet" in re.search(rf'<tr[^>]*data-batch="{batch.pk}".*?</tr>', html, re.S).group(0)
    assert 'id="chart-kappa"' not in html
    assert AgreementSnapshot.objects.count() == 0


def test_a_kappa_without_a_value_shows_a_dash_with_the_reason(lead, project):
    batch = BatchFactory(project=project, name="lonely")
    judge_items(batch, {"solo": ["a", "b", "a"]})  # one annotator: no item is shared
    snapshot_compute(batch=batch)
    html = browser_for(lead).get(dashboard_url(project)).content.decode()
    row = re.search(rf'<tr[^>]*data-batch="{batch.pk}".*?</tr>', html, re.S).group(0)
    assert (
        '<span class="null" title="No item was judged by two or more annotators, so there is nothing to agree on.">—</span>'
        in row
    )
    assert "None" not in row and "nan" not in row.lower()


def test_flags_are_shown_with_their_level(lead, project):
    batch = BatchFactory(project=project, name="noisy")
    # Three annotators who never agree: kappa far below the alarm threshold.
    judge_items(
        batch,
        {"x1": ["a", "b", "tie"] * 4, "x2": ["b", "tie", "a"] * 4, "x3": ["tie", "a", "b"] * 4},
    )
    snapshot = snapshot_compute(batch=batch)
    codes = {(f["code"], f["level"]) for f in snapshot.report["flags"] if f["subject"] == "batch"}
    assert ("batch_kappa", "alarm") in codes
    html = browser_for(lead).get(dashboard_url(project)).content.decode()
    row = re.search(rf'<tr[^>]*data-batch="{batch.pk}".*?</tr>', html, re.S).group(0)
    assert 'class="level-alarm"' in row
    assert '<span class="flag flag-alarm"' in row and "batch kappa" in row
    assert "band-alarm" in row  # the kappa cell itself


def test_the_annotator_page_shows_their_stats_per_batch(lead, project, judged):
    b1, _, snapshot = judged
    stats = next(a for a in snapshot_summary(batch=b1, snapshot=snapshot)["annotators"] if a["username"] == "ann3")
    client = browser_for(lead)
    response = client.get(f"{dashboard_url(project)}annotators/{stats['annotator_id']}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>ann3" in html
    table = re.search(r'<table class="figures" id="annotator-table">.*?</table>', html, re.S).group(0)
    assert f"{100 * stats['gold_accuracy']:.0f} %" in table
    assert f"{stats['consensus_kappa']:.2f}" in table or stats["consensus_kappa"] is None
    assert "Not computed yet." in table  # b2
    data = json.loads(
        re.search(r'<script id="annotator-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    )
    assert data["batch_names"] == ["b1"]
    assert data["series"]["gold_accuracy"] == [stats["gold_accuracy"]]
    # Someone who is neither a member nor judged anything: 404.
    stranger = UserFactory(username="nobody")
    assert client.get(f"{dashboard_url(project)}annotators/{stranger.pk}/").status_code == 404


def test_the_split_items_page_shows_votes_models_and_escaped_responses(lead, project):
    batch = BatchFactory(project=project, name="split")
    split, agreed = judge_items(
        batch,
        {"s1": ["a", "a"], "s2": ["b", "a"], "s3": ["tie", "a"]},
        response_a_text=HOSTILE,
        response_a_model="model-<b>alpha</b>",
    )
    snapshot_compute(batch=batch)  # the list is stored with the snapshot
    client = browser_for(lead)
    response = client.get(f"{dashboard_url(project)}split-items/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-item="{split.pk}"' in html and f'data-item="{agreed.pk}"' not in html
    assert "1 item<" in html
    assert "<img src=x" not in html and "<script>alert" not in html and "<b>alpha" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "model-&lt;b&gt;alpha&lt;/b&gt;" in html and "model-beta" in html
    assert split.response_b_text in html
    assert f'href="/api/v1/projects/{project.pk}/split-items/?format=csv&amp;batch={batch.pk}"' in html
    # The page opens on the newest batch; "all" shows every batch; an unknown batch is 404.
    BatchFactory(project=project, name="other")
    assert b"No split items in other" in client.get(f"{dashboard_url(project)}split-items/").content
    assert f'data-item="{split.pk}"'.encode() in client.get(f"{dashboard_url(project)}split-items/?batch=all").content
    html = client.get(f"{dashboard_url(project)}split-items/?batch={batch.pk}").content.decode()
    assert f'data-item="{split.pk}"' in html
    assert f'href="/api/v1/projects/{project.pk}/split-items/?format=csv&amp;batch={batch.pk}"' in html
    assert client.get(f"{dashboard_url(project)}split-items/?batch=999999").status_code == 404


def test_the_csv_links_answer_with_the_session_login(lead, project, judged):
    client = browser_for(lead)
    html = client.get(dashboard_url(project)).content.decode()
    links = re.findall(r'<a class="csv" href="([^"]+)"', html)
    assert len(links) == 2
    for url in links:
        response = client.get(url.replace("&amp;", "&"))
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("text/csv")
    body = client.get(links[0]).content.decode()
    assert body.splitlines()[0].startswith("batch_id,batch,")
    assert len(body.splitlines()) == 3  # header, b1, b2


def test_leads_get_a_dashboard_link_in_the_header_and_on_home(lead, annotator, project):
    html = browser_for(lead).get("/").content.decode()
    assert '<a href="/lead/">Dashboard</a>' in html
    assert f'href="/lead/projects/{project.pk}/"' in html
    html = browser_for(annotator).get("/").content.decode()
    assert "/lead/" not in html


def test_a_superuser_may_open_every_dashboard_as_the_lead_api_allows(superuser, project, judged):
    client = browser_for(superuser)
    assert client.get("/lead/").status_code == 200
    assert client.get(dashboard_url(project)).status_code == 200


def test_the_pages_carry_the_strict_csp_and_no_inline_script(lead, project, judged):
    client = browser_for(lead)
    member = judged[2].report["annotators"][0]["annotator"]
    for url in (
        "/lead/",
        dashboard_url(project),
        f"{dashboard_url(project)}annotators/{member}/",
        f"{dashboard_url(project)}split-items/",
    ):
        response = client.get(url)
        assert "script-src 'self'" in response["Content-Security-Policy"]
        html = response.content.decode()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert 'src="' in tag or 'type="application/json"' in tag, tag
        assert not re.search(r"\son[a-z]+\s*=", html, re.I)
        assert not re.search(r"\sstyle\s*=", html, re.I)


def test_the_dashboard_script_writes_no_html_strings():
    text = (STATIC / "dashboard.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in text


def test_the_split_items_page_pages_through_long_lists(lead, project):
    batch = BatchFactory(project=project, name="many")
    judge_items(batch, {"s1": ["a"] * 27, "s2": ["b"] * 27, "s3": ["tie"] * 27})
    snapshot_compute(batch=batch)
    client = browser_for(lead)
    first = client.get(f"{dashboard_url(project)}split-items/").content.decode()
    assert "27 items" in first and first.count('class="split-item"') == 25
    assert f'href="?batch={batch.pk}&amp;page=2"' in first
    second = client.get(f"{dashboard_url(project)}split-items/?batch={batch.pk}&page=2").content.decode()
    assert second.count('class="split-item"') == 2 and "Page 2 of 2" in second


def test_watch_and_warn_levels_show_with_their_meaning_in_words_and_the_minimum_seconds(lead, project):
    """A left-leaning, hasty annotator on 18 items: the page says the level (watch: a large effect on few
    judgments; warn), what each flag means without hovering, and the project's minimum seconds."""
    batch = BatchFactory(project=project, name="hasty")
    items = ItemFactory.create_batch(18, batch=batch)
    for n, item in enumerate(items):
        for username in ("steady1", "steady2"):
            judge(item, username, "a", shown_left="ab"[n % 2])
        shown = "ab"[n % 2]
        picked = shown if n < 14 else ("b" if shown == "a" else "a")  # left on 14 of 18
        judge(item, "lefty", picked, shown_left=shown, seconds=1.5)
    snapshot = snapshot_compute(batch=batch)
    levels = {(f["code"], f["level"]) for f in snapshot.report["flags"] if f["subject"] == "annotator"}
    assert ("position_bias", "watch") in levels and ("too_fast", "warn") in levels

    client = browser_for(lead)
    html = client.get(dashboard_url(project)).content.decode()
    table = re.search(r'<table class="figures" id="annotator-flags">.*?</table>', html, re.S).group(0)
    row = re.search(r'<tr class="level-watch">.*?position bias.*?</tr>', table, re.S).group(0)
    assert '<td class="level-word">watch</td>' in row
    assert "Picks the response shown on the left (or right) more than chance" in row  # the meaning, as text
    assert "took less than the project minimum of 3 s" in table
    assert 'id="flag-legend"' in html and "a large effect on few judgments" in html

    lefty = next(r for r in snapshot.report["annotators"] if r["username"] == "lefty")["annotator"]
    page = client.get(f"{dashboard_url(project)}annotators/{lefty}/").content.decode()
    assert "Too fast (&lt; 3 s)" in page
    # Per batch, each flag opens on a tap (a details element), not only on hover.
    assert '<details class="flag-detail"><summary><span class="flag flag-watch">position bias' in page
    assert "Picks the response shown on the left" in page and '<span class="level-word">watch</span>' in page


def test_the_flags_table_lists_every_batch_newest_first(lead, project):
    """Flags raised in an earlier batch stay in the table (with their batch), under the newest batch's."""
    for name, lefty in (("first", "early-lefty"), ("second", "late-lefty")):
        batch = BatchFactory(project=project, name=name)
        for n, item in enumerate(ItemFactory.create_batch(18, batch=batch)):
            for username in ("steady1", "steady2"):
                judge(item, username, "a", shown_left="ab"[n % 2])
            shown = "ab"[n % 2]
            judge(item, lefty, shown if n < 17 else ("b" if shown == "a" else "a"), shown_left=shown)
        snapshot_compute(batch=batch)

    html = browser_for(lead).get(dashboard_url(project)).content.decode()
    table = re.search(r'<table class="figures" id="annotator-flags">.*?</table>', html, re.S).group(0)
    assert table.index("late-lefty") < table.index("early-lefty")
    late = re.search(r"<tr[^>]*>\s*<td>second <span[^>]*>\(newest\)</span></td>.*?</tr>", table, re.S).group(0)
    assert "late-lefty" in late
    early = re.search(r'<tr class="[^"]*earlier-batch">\s*<td>first</td>.*?</tr>', table, re.S)
    assert early and "early-lefty" in table[early.start() :]


def _dashboard_data(client, project) -> dict:
    html = client.get(dashboard_url(project)).content.decode()
    return json.loads(re.search(r'<script id="dashboard-data" type="application/json">(.*?)</script>', html, re.S)[1])


def test_judgments_over_ten_days_are_counted_per_day_and_over_a_day_per_hour(lead, project):
    batch = BatchFactory(project=project, name="slow")
    # From midnight nine days ago, every 12 hours: ten whole days, whatever the time of day the test runs at.
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=9)
    for n, item in enumerate(ItemFactory.create_batch(20, batch=batch)):
        judgment = judge(item, "steady1", "a")
        Judgment.objects.filter(pk=judgment.pk).update(created_at=start + timedelta(hours=12 * n))
    snapshot_compute(batch=batch)
    client = browser_for(lead)
    per_time = _dashboard_data(client, project)["per_hour"]
    assert per_time["unit"] == "day"
    assert len(per_time["rows"]) == 10 and sum(r["judgments"] for r in per_time["rows"]) == 20
    assert all(datetime.fromisoformat(r["start"]).hour == 0 for r in per_time["rows"])

    Judgment.objects.filter(batch=batch).update(created_at=start)
    snapshot_compute(batch=batch)
    per_time = _dashboard_data(client, project)["per_hour"]
    assert per_time == {"unit": "hour", "rows": [{"start": start.isoformat(), "judgments": 20}]}


def test_the_bias_chart_compares_length_preference_with_the_consensus(lead, project):
    """The longer answer is the consensus's pick on every item: an annotator who agrees is at ½ (no excess), one who
    picks the shorter answer where the others picked the longer is at 0."""
    batch = BatchFactory(project=project, name="lengths")
    for item in ItemFactory.create_batch(12, batch=batch):  # B is the longer response
        for username in ("steady1", "steady2", "steady3"):
            judge(item, username, "b")
        judge(item, "shorty", "a")
    snapshot_compute(batch=batch)
    (bias,) = _dashboard_data(browser_for(lead), project)["bias"]
    by_name = {row["username"]: row for row in bias["annotators"]}
    assert by_name["steady1"]["longer_share"] == 1.0  # the old bar: looks biased, is not
    assert by_name["shorty"]["longer_vs_consensus"] == 0.0
