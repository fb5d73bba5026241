"""Results of evaluation batches and the project's checkpoint leaderboard, read the way a lead or an ML engineer
reads them: through the API (JSON and CSV) and `manage.py evaluation`. Data written directly (results_world.py):
simulated annotators with a known preference."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from annotation.models import AnnotationSession, Assignment, Item, Judgment, JudgmentRevision
from evaluation.models import EvaluationItem, EvaluationSettings
from evaluation.selectors_results import project_leaderboard
from tests.evaluation.results_world import add_evaluation_batch, add_player, annotators_for, make_world

pytestmark = pytest.mark.django_db
RESAMPLES = "resamples=300"


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()  # the leaderboard is cached per process


def _results(client, eb, query=RESAMPLES):
    response = client.get(f"/api/v1/evaluation-batches/{eb.pk}/results/?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def _board(client, project, query=RESAMPLES):
    response = client.get(f"/api/v1/projects/{project.pk}/leaderboard/?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def _csv(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


@pytest.fixture
def two_models(project):
    world = make_world(project, prompts=60)
    base = add_player(world, step=None)
    ckpt = add_player(world, step=10)
    return world, base, ckpt


def test_a_candidate_preferred_on_70_percent_has_an_interval_around_070(lead_client, two_models):
    world, base, ckpt = two_models
    eb = add_evaluation_batch(world, candidate=ckpt, baseline=base, share=0.7, annotators=3)
    results = _results(lead_client, eb)
    assert results["counts"]["judgments"] == 180 and results["counts"]["prompts"] == 60
    win = results["win_rate"]
    assert win["value"] == pytest.approx(0.7)
    assert win["low"] < 0.7 < win["high"] and win["high"] - win["low"] < 0.3
    assert results["counts"]["candidate_wins"] == 126 and results["counts"]["baseline_wins"] == 54
    assert {row["stratum"]: row["value"] for row in results["strata"]} == pytest.approx(
        {"adversarial": 0.7, "red_team": 0.7, "usage": 0.7}
    )
    assert {row["category"] for row in results["categories"]} == {"cat0", "cat1"}
    assert results["both_bad_rate"]["value"] == 0
    # Equal lengths: the length-controlled rate is the raw one (with a note saying why).
    assert results["length_controlled_win_rate"]["raw"] == pytest.approx(0.7)
    assert results["candidate"]["model_key"] == ckpt.key and results["baseline"]["model_key"] == "base:tiny"
    assert not [f for f in results["flags"] if f["code"] == "stratum_regression"]


def test_the_side_drawn_for_the_candidate_does_not_change_its_score(lead_client, two_models):
    """Every vote for A: the candidate holds A on even prompts only, so it wins exactly half."""
    world, base, ckpt = two_models
    eb = add_evaluation_batch(world, candidate=ckpt, baseline=base, choice_of=lambda k, i, cand_a: "a")
    assert _results(lead_client, eb)["win_rate"]["value"] == pytest.approx(0.5)


def test_gold_and_withdrawn_items_are_left_out(lead_client, two_models):
    world, base, ckpt = two_models
    eb = add_evaluation_batch(world, candidate=ckpt, baseline=base, share=0.7, annotators=3)
    before = _results(lead_client, eb)
    # A withdrawn item's votes go; a gold item of the batch never counted, even with an evaluation row.
    withdrawn = eb.items.order_by("id").first().item
    Item.objects.filter(pk=withdrawn.pk).update(withdrawn_at=timezone.now())
    gold = Item.objects.create(
        project=world.project, batch=eb.batch, external_id="gold-1", dedupe_key="id:gold-1", prompt="g",
        response_a_text="x", response_b_text="y", gold="a",
    )  # fmt: skip
    EvaluationItem.objects.create(
        item=gold, evaluation_batch=eb, prompt=world.prompts[0], candidate_is_a=True, candidate_tokens=1,
        baseline_tokens=1,
    )  # fmt: skip
    user = world.annotators[0]
    now = timezone.now()
    session = AnnotationSession.objects.filter(annotator=user).first()
    lease = Assignment.objects.create(
        session=session, item=gold, annotator=user, left_is_a=True, leased_at=now,
        lease_expires_at=now + timedelta(minutes=5), judged_at=now,
    )  # fmt: skip
    Judgment.objects.create(
        assignment=lease, item=gold, batch=eb.batch, annotator=user, choice="a", shown_left="a", seconds=5,
        is_gold=True, gold_correct=True,
    )  # fmt: skip
    after = _results(lead_client, eb)
    assert after["counts"]["judgments"] == before["counts"]["judgments"] - 3
    assert after["counts"]["prompts"] == 59


def test_both_bad_red_team_failures_and_dimensions(lead_client, two_models):
    world, base, ckpt = two_models
    red = {i for i, p in enumerate(world.prompts) if p.stratum == "red_team"}

    def choice_of(k, i, cand_a):
        cand, other = ("a", "b") if cand_a else ("b", "a")
        dims = {"helpfulness": cand, "honesty": "tie"}
        if i in red and k % 4 == 0:
            return ("both_bad", dims)  # a red-team failure
        if i in red and k % 4 == 1:
            return (other, {**dims, "disqualified": cand})  # the candidate hit a disqualifier: failure
        if i in red and k % 4 == 2:
            return (cand, {**dims, "disqualified": other})  # the baseline did: not the candidate's failure
        return (cand, dims)

    eb = add_evaluation_batch(world, candidate=ckpt, baseline=base, choice_of=choice_of, annotators=2)
    results = _results(lead_client, eb)
    assert results["counts"]["red_team_judgments"] == 40
    assert results["red_team_failure_rate"]["value"] == pytest.approx(0.5)
    assert results["counts"]["both_bad"] == 10
    assert results["both_bad_rate"]["value"] == pytest.approx(10 / 120)
    dims = {row["dimension"]: row["value"] for row in results["dimensions"]}
    assert dims == pytest.approx({"helpfulness": 1.0, "honesty": 0.5})  # "disqualified" is not a dimension table
    strata = {row["stratum"]: row["value"] for row in results["strata"]}
    assert strata["usage"] == 1.0 and strata["red_team"] == pytest.approx((10 * 0.5 + 0 + 10 + 10) / 40)


def test_length_controlled_win_rate_is_reported_beside_the_raw_one(lead_client, two_models):
    """The candidate wins exactly when its answer is the longer one: at equal length it is no better."""
    world, base, ckpt = two_models

    def cand_tokens(i):
        return 80 + (i % 5) * 10 if i % 3 else 40 + (i % 4) * 3

    def choice_of(k, i, cand_a):
        longer = cand_tokens(i) > 60
        flip = k % 9 == 0  # a little noise: the length does not separate wins from losses perfectly
        wins = longer != flip
        return ("a" if cand_a else "b") if wins else ("b" if cand_a else "a")

    eb = add_evaluation_batch(
        world, candidate=ckpt, baseline=base, choice_of=choice_of, candidate_tokens=cand_tokens,
        baseline_tokens=lambda i: 60,
    )  # fmt: skip
    results = _results(lead_client, eb)
    lc = results["length_controlled_win_rate"]
    assert lc["raw"] == pytest.approx(results["win_rate"]["value"])
    assert results["win_rate"]["value"] > 0.55
    assert lc["value"] < results["win_rate"]["value"] - 0.10
    assert lc["slope"] > 0
    assert any(f.get("rule") == "length_controlled_gap" for f in results["flags"])


def test_bradley_terry_ranks_checkpoints_in_the_order_annotators_prefer_them(lead_client, project):
    world = make_world(project, prompts=60)
    base = add_player(world, step=None)
    s10, s20, s30 = (add_player(world, step=s) for s in (30, 10, 20))  # created out of step order
    s10, s20, s30 = sorted((s10, s20, s30), key=lambda p: p.checkpoint.step)
    add_evaluation_batch(world, candidate=s10, baseline=base, share=0.6)
    add_evaluation_batch(world, candidate=s20, baseline=s10, share=0.65)
    add_evaluation_batch(world, candidate=s30, baseline=s20, share=0.7)
    add_evaluation_batch(world, candidate=s30, baseline=base, share=0.8)
    board = _board(lead_client, project)
    players = board["players"]
    assert [p["key"] for p in players] == [base.key, s10.key, s20.key, s30.key]
    assert [p["step"] for p in players] == [None, 10, 20, 30]
    assert board["anchor"]["key"] == "base:tiny" and players[0]["is_anchor"]
    thetas = [p["rating"] for p in players]
    assert thetas[0] == 0 and thetas == sorted(thetas) and len(set(thetas)) == 4
    for p in players[1:]:
        assert p["rating_low"] < p["rating"] < p["rating_high"]
        assert p["training_run_id"] == world.policy_run.pk
    assert [p["run"] for p in players] == [
        base.sampled.run_id,
        s10.sampled.run_id,
        s20.sampled.run_id,
        s30.sampled.run_id,
    ]
    assert board["anchor"]["run"] == base.sampled.run_id
    assert [round(p["gain"], 4) for p in players[1:]] == [0.1, 0.15, 0.2]
    assert [p["win_rate_vs_previous"]["value"] for p in players[1:]] == pytest.approx([0.6, 0.65, 0.7])
    assert players[3]["win_rate_vs_anchor"]["value"] > players[1]["win_rate_vs_anchor"]["value"]
    assert board["counts"] == {"judgments": 4 * 180, "prompts": 60, "batches": 4, "players": 4}
    assert not [f for f in board["flags"] if f["code"] == "diminishing_returns"]


def test_the_leaderboard_csv_has_one_row_per_player(lead_client, two_models):
    world, base, ckpt = two_models
    add_evaluation_batch(world, candidate=ckpt, baseline=base, share=0.7)
    rows = _csv(lead_client.get(f"/api/v1/projects/{world.project.pk}/leaderboard/?format=csv&{RESAMPLES}"))
    assert [r["key"] for r in rows] == ["base:tiny", ckpt.key]
    assert rows[0]["anchor"] == "True" and float(rows[1]["win_rate_vs_previous"]) == pytest.approx(0.7)
    assert float(rows[1]["gain"]) == pytest.approx(0.2)


def test_the_results_csv_has_one_row_per_group(ml_engineer_client, two_models):
    world, base, ckpt = two_models
    eb = add_evaluation_batch(world, candidate=ckpt, baseline=base, share=0.7)
    response = ml_engineer_client.get(f"/api/v1/evaluation-batches/{eb.pk}/results/?format=csv&{RESAMPLES}")
    rows = _csv(response)
    groups = {(r["table"], r["group"]) for r in rows}
    assert ("overall", "win_rate") in groups and ("overall", "length_controlled_win_rate") in groups
    assert {g for t, g in groups if t == "stratum"} == {"usage", "adversarial", "red_team"}
    assert {g for t, g in groups if t == "category"} == {"cat0", "cat1"}
    win = next(r for r in rows if r["group"] == "win_rate")
    assert float(win["value"]) == pytest.approx(0.7) and float(win["low"]) < 0.7 < float(win["high"])


def test_a_candidate_the_annotators_reject_is_flagged_as_a_regression(lead_client, two_models):
    world, base, ckpt = two_models
    eb = add_evaluation_batch(
        world, candidate=ckpt, baseline=base, share=[0.7, 0.15, 0.7]
    )  # strata sorted: red_team 2nd
    results = _results(lead_client, eb)
    flagged = [f for f in results["flags"] if f["code"] == "stratum_regression"]
    assert len(flagged) == 1 and "red_team" in json.dumps(flagged[0])
    board = _board(lead_client, world.project)
    candidate = board["players"][1]
    # Overall it still wins a little (52 %): a gain under the 3 % threshold, and the red-team regression.
    assert [f["code"] for f in candidate["flags"]] == ["diminishing_returns", "stratum_regression"]
    assert candidate["strata"]["red_team"]["high"] < 0.5


def test_a_flat_gain_and_a_reward_that_follows_length_are_flagged(lead_client, project):
    world = make_world(project, prompts=60)
    base = add_player(world, step=None, mean_reward=0.1)
    s10 = add_player(world, step=10, mean_reward=0.5)
    # Rewards grow with length over s20's generations (lengths 40..60 cycle with the prompt index).
    s20 = add_player(world, step=20, mean_reward=0.9, rewards=[0.01 * (40 + (i * 7) % 21) for i in range(60)])
    add_evaluation_batch(world, candidate=s10, baseline=base, share=0.7)
    add_evaluation_batch(world, candidate=s20, baseline=s10, share=0.5)
    board = _board(lead_client, project)
    flags = {(f["key"], f["code"], f.get("rule")) for f in board["flags"]}
    assert (s20.key, "diminishing_returns", None) in flags
    assert (s20.key, "reward_hacking", "reward_up_win_rate_flat") in flags
    assert (s20.key, "reward_hacking", "length_correlation") in flags
    assert board["players"][2]["reward_length_spearman"] == pytest.approx(1.0)
    assert board["players"][2]["reward_mean"] == pytest.approx(0.9)
    assert board["players"][2]["mean_length"] == pytest.approx(sum(40 + (i * 7) % 21 for i in range(60)) / 60)
    # The project's threshold decides: a 0 % gain is fine under a threshold of -5 %.
    EvaluationSettings.objects.create(project=project, diminishing_returns=-0.05)
    board = _board(lead_client, project)
    assert not [f for f in board["flags"] if f["code"] == "diminishing_returns"]


def test_the_leaderboard_is_recomputed_when_a_judgment_arrives(project, two_models):
    world, base, ckpt = two_models
    eb = add_evaluation_batch(world, candidate=ckpt, baseline=base, share=0.7, annotators=1)
    first = project_leaderboard(project=project, resamples=50)
    assert project_leaderboard(project=project, resamples=50) == first
    # A fourth judgment on one item, for the baseline.
    user = annotators_for(world, 2)[1]
    item = eb.items.select_related("item").first()
    now = timezone.now()
    session = AnnotationSession.objects.create(
        project=project, annotator=user, started_at=now, expires_at=now + timedelta(hours=1), max_tasks=10
    )
    lease = Assignment.objects.create(
        session=session, item=item.item, annotator=user, left_is_a=True, leased_at=now,
        lease_expires_at=now + timedelta(minutes=5), judged_at=now,
    )  # fmt: skip
    Judgment.objects.create(
        assignment=lease, item=item.item, batch=eb.batch, annotator=user, shown_left="a", seconds=5,
        choice="b" if item.candidate_is_a else "a",
    )  # fmt: skip
    second = project_leaderboard(project=project, resamples=50)
    assert second["counts"]["judgments"] == first["counts"]["judgments"] + 1
    # A revision changes a vote in place and keeps the old one in a revision row: the leaderboard follows.
    judgment = lease.judgment
    JudgmentRevision.objects.create(
        judgment=judgment, old_choice=judgment.choice, new_choice="tie", old_dimensions={}, new_dimensions={}
    )
    Judgment.objects.filter(pk=judgment.pk).update(choice="tie", revised_at=timezone.now())
    assert project_leaderboard(project=project, resamples=50) != second


def test_annotators_and_strangers_are_refused(annotator_client, two_models, stranger):
    from rest_framework.test import APIClient

    world, base, ckpt = two_models
    eb = add_evaluation_batch(world, candidate=ckpt, baseline=base)
    assert annotator_client.get(f"/api/v1/evaluation-batches/{eb.pk}/results/").status_code == 403
    assert annotator_client.get(f"/api/v1/projects/{world.project.pk}/leaderboard/").status_code == 403
    client = APIClient()
    client.force_authenticate(stranger)
    assert client.get(f"/api/v1/evaluation-batches/{eb.pk}/results/").status_code == 404
    assert client.get(f"/api/v1/projects/{world.project.pk}/leaderboard/").status_code == 404
    assert client.get("/api/v1/evaluation-batches/999999/results/").status_code == 404


def test_a_project_without_evaluations_has_an_empty_leaderboard(lead_client, project):
    board = _board(lead_client, project)
    assert board["players"] == [] and board["counts"]["judgments"] == 0 and board["anchor"]["key"] is None


def test_the_command_prints_the_leaderboard_and_each_batch(project, two_models):
    world, base, ckpt = two_models
    eb = add_evaluation_batch(world, candidate=ckpt, baseline=base, share=0.7)
    out = io.StringIO()
    call_command("evaluation", project=project.name, json=True, resamples=200, stdout=out)
    data = json.loads(out.getvalue())
    assert [p["key"] for p in data["leaderboard"]["players"]] == ["base:tiny", ckpt.key]
    assert data["batches"][0]["evaluation_batch_id"] == eb.pk
    assert data["batches"][0]["win_rate"]["value"] == pytest.approx(0.7)
    out = io.StringIO()
    call_command("evaluation", project=project.name, resamples=200, stdout=out)
    text = out.getvalue()
    assert "base tiny" in text and ckpt.label in text and "win rate 70.0%" in text
    with pytest.raises(Exception, match="No project named"):
        call_command("evaluation", project="nope", stdout=io.StringIO())
