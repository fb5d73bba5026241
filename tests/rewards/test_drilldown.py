"""The lead's drill-down API: an annotator's votes, gold misses and justifications, paged, filtered, and as CSV."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model

from annotation.models import Judgment
from tests.factories import BatchFactory, ItemFactory, ProjectFactory
from tests.rewards.judging import judge

pytestmark = pytest.mark.django_db


def url(project, user_id, query: str = "") -> str:
    return f"/api/v1/projects/{project.pk}/annotators/{user_id}/judgments/{query}"


@pytest.fixture
def history(project):
    """carol judges five items of batch one (one gold, missed; one justification that looks like a formula) and one
    of batch two; dave and erin vote on the same items so each has a majority."""
    one, two = BatchFactory(project=project, name="one"), BatchFactory(project=project, name="two")
    items = [ItemFactory(batch=one) for _ in range(4)] + [ItemFactory(batch=one, gold="a", external_id="gold-1")]
    for item in items:
        judge(item, "dave", "a")
        judge(item, "erin", "a")
    for item, choice in zip(items, ["a", "b", "tie", "both_bad", "b"], strict=True):
        judge(item, "carol", choice, shown_left="b")
    later = ItemFactory(batch=two, messages=[{"role": "user", "content": "A conversation's question"}], prompt="")
    judge(later, "carol", "a", seconds=1.0)
    carol = get_user_model().objects.get(username="carol")
    Judgment.objects.filter(annotator=carol, item=items[1]).update(justification='=HYPERLINK("http://x")')
    return {"one": one, "two": two, "items": items, "later": later, "carol": carol}


def test_rows_show_canonical_votes_models_majority_and_gold(lead_client, project, history):
    body = lead_client.get(url(project, history["carol"].pk)).json()
    assert body["count"] == 6 and body["pages"] == 1
    rows = {row["item_pk"]: row for row in body["results"]}
    b_vote = rows[history["items"][1].pk]
    # Shown with B on the left, stored canonically: the row says B and names B's model, never "left".
    assert b_vote["choice"] == "B" and b_vote["chosen_model"] == "model-beta"
    assert (b_vote["model_a"], b_vote["model_b"]) == ("model-alpha", "model-beta")
    assert b_vote["majority"] == "A" and b_vote["votes"] == "A 2 · B 1"
    assert b_vote["justification"].startswith("=HYPERLINK")
    assert rows[history["items"][3].pk]["choice"] == "both bad"
    gold = rows[history["items"][4].pk]
    assert (gold["item_id"], gold["gold"], gold["gold_correct"]) == ("gold-1", "A", False)
    assert rows[history["items"][0].pk]["gold"] == "" and rows[history["items"][0].pk]["gold_correct"] is None
    later = rows[history["later"].pk]
    assert later["prompt"] == "A conversation's question" and later["batch"] == "two" and later["too_fast"] is True
    assert later["majority"] == "A" and later["votes"] == "A 1"
    # Newest first.
    assert body["results"][0]["item_pk"] == history["later"].pk


def test_filters(lead_client, project, history):
    carol = history["carol"].pk
    in_one = lead_client.get(url(project, carol, f"?batch={history['one'].pk}")).json()
    assert in_one["count"] == 5 and {r["batch"] for r in in_one["results"]} == {"one"}
    missed = lead_client.get(url(project, carol, "?gold_missed=1")).json()
    assert [r["item_id"] for r in missed["results"]] == ["gold-1"]
    justified = lead_client.get(url(project, carol, "?with_justification=1")).json()
    assert [r["item_pk"] for r in justified["results"]] == [history["items"][1].pk]
    both = lead_client.get(url(project, carol, f"?batch={history['two'].pk}&gold_missed=1")).json()
    assert both["count"] == 0 and both["results"] == []


def test_a_batch_of_another_project_is_not_found(lead_client, project, history):
    other = BatchFactory(project=ProjectFactory())
    response = lead_client.get(url(project, history["carol"].pk, f"?batch={other.pk}"))
    assert response.status_code == 404 and response.json()["code"]
    assert lead_client.get(url(project, history["carol"].pk, "?batch=abc")).status_code == 400


def test_paging(lead_client, project):
    batch = BatchFactory(project=project)
    for _ in range(53):
        judge(ItemFactory(batch=batch), "frank", "a")
    frank = get_user_model().objects.get(username="frank").pk
    first = lead_client.get(url(project, frank)).json()
    second = lead_client.get(url(project, frank, "?page=2")).json()
    assert (first["count"], first["pages"], len(first["results"]), len(second["results"])) == (53, 2, 50, 3)
    assert not {r["judgment_id"] for r in first["results"]} & {r["judgment_id"] for r in second["results"]}
    assert lead_client.get(url(project, frank, "?page=3")).status_code == 404


def test_csv_has_every_matching_row_escaped_and_always_a_header(lead_client, project, history):
    carol = history["carol"].pk
    response = lead_client.get(url(project, carol, "?format=csv"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 6
    justified = next(r for r in rows if r["justification"])
    assert justified["justification"].startswith("'=HYPERLINK")  # a spreadsheet shows it as text, never runs it
    assert {r["choice"] for r in rows} == {"A", "B", "tie", "both bad"}
    empty = lead_client.get(url(project, carol, f"?batch={history['two'].pk}&with_justification=1&format=csv"))
    header = empty.content.decode().splitlines()
    assert len(header) == 1 and header[0].startswith("judgment_id,item_id,item_pk,batch_id,batch,prompt,choice")


def test_only_leads_see_votes(project, history, annotator_client, ml_engineer_client, stranger_client, anon_client):
    carol = history["carol"].pk
    assert annotator_client.get(url(project, carol)).status_code == 403
    assert ml_engineer_client.get(url(project, carol)).status_code == 403
    assert ml_engineer_client.get(url(project, carol, "?format=csv")).status_code == 403
    assert stranger_client.get(url(project, carol)).status_code == 404  # no role in the project: it does not exist
    assert anon_client.get(url(project, carol)).status_code == 401


def test_a_user_without_judgments_in_the_project_is_not_found(lead_client, project, history, annotator, stranger):
    assert lead_client.get(url(project, annotator.pk)).status_code == 404
    assert lead_client.get(url(project, stranger.pk)).status_code == 404
    # carol's judgments in another project do not open her drill-down there to this project's lead.
    elsewhere = ProjectFactory()
    assert lead_client.get(url(elsewhere, history["carol"].pk)).status_code == 404
