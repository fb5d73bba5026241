"""`manage.py agreement --project NAME [--json]`: snapshots every batch now and prints the figures and flags."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from rewards.models import AgreementSnapshot, ProjectFlagRules
from tests.factories import BatchFactory, ProjectFactory
from tests.rewards.judging import judge_items


@pytest.fixture
def two_batches(db):
    project = ProjectFactory(name="Summaries", overlap=3)
    first = BatchFactory(project=project, name="b1")
    judge_items(first, {"ann1": ["a", "b", "a", "b"], "ann2": ["a", "b", "a", "a"], "ann3": ["a", "b", "b", "b"]})
    second = BatchFactory(project=project, name="b2")
    judge_items(
        second,
        {"ann1": ["a", "a", "b"], "ann2": ["a", "a", "b"], "ann4": ["b", "a", "b"]},
        gold="a",  # every item of the second batch is gold, answer A
    )
    return project, first, second


def run(*args) -> str:
    out = StringIO()
    call_command("agreement", *args, stdout=out)
    return out.getvalue()


def test_json_has_per_batch_figures_and_per_annotator_statistics_and_flags(two_batches):
    project, first, _second = two_batches
    # A lead who wants every batch under 0.99 kappa flagged.
    ProjectFlagRules.objects.create(project=project, rules={"batch_kappa_warn": 0.99, "batch_kappa_alarm": 0.1})
    data = json.loads(run("--project", "Summaries", "--json"))

    assert data["project"] == "Summaries" and data["project_id"] == project.pk
    assert [b["batch"] for b in data["batches"]] == ["b1", "b2"]
    b1, b2 = data["batches"]
    assert AgreementSnapshot.objects.count() == 2
    stored = AgreementSnapshot.objects.get(batch=first).report
    for key in ("cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "agreement", "gold_accuracy"):
        assert b1[key] == stored[key]["value"]
    assert b1["judgments"] == 12 and b1["items"] == 4 and b1["annotator_count"] == 3
    assert b1["cohen_kappa"] is not None and b1["krippendorff_alpha"] is not None
    assert b1["gold_accuracy"] is None  # no gold item in the first batch
    assert b2["gold_accuracy"] == pytest.approx(5 / 9) and b2["gold_judgments"] == 9
    assert {f["code"] for f in b1["flags"]} >= {"batch_kappa"}
    assert all(f["subject"] == "batch" and f["level"] in ("warn", "alarm") for f in b1["flags"])
    # One annotator in three of the second batch is new: the recalibrate rule (over 30 %) fires.
    (recalibrate,) = [f for f in b2["flags"] if f["code"] == "recalibrate"]
    # Its advice points at the project's qualification step (off here: it says the project can require one).
    assert "qualification set of gold items" in recalibrate["message"]

    annotators = {a["username"]: a for a in b2["annotators"]}
    assert set(annotators) == {"ann1", "ann2", "ann4"}
    ann4 = annotators["ann4"]
    assert ann4["judgments"] == 3 and ann4["gold_accuracy"] == pytest.approx(1 / 3) and ann4["gold_items"] == 3
    for key in ("consensus_kappa", "left_share", "longer_share", "tie_rate", "median_seconds", "too_fast", "flags"):
        assert key in ann4


def test_every_run_computes_fresh_snapshots(two_batches):
    run("--project", "Summaries", "--json")
    run("--project", "Summaries", "--json")
    assert AgreementSnapshot.objects.count() == 4


def test_tables_for_people(two_batches):
    text = run("--project", "Summaries")
    assert "Project Summaries: 2 batch(es)" in text
    assert "Batch b1 (open, criteria v1): 12 judgments, 4 items, 3 annotators" in text
    assert "ann4" in text and "kappa" in text


def test_unknown_project_is_a_command_error(db):
    with pytest.raises(CommandError, match="No project named 'Nope'"):
        run("--project", "Nope", "--json")
