"""A snapshot stored before agreement left gold items out is no consensus baseline for today's figures: its
agreement with the consensus counted easy gold items, so comparing would read as a drop. Gold accuracy, which
never changed, still is."""

import pytest

from rewards.models import AgreementSnapshot
from rewards.services.snapshots import snapshot_compute
from tests.factories import BatchFactory, ItemFactory
from tests.rewards.judging import judge, judge_items

pytestmark = pytest.mark.django_db

VOTES = {
    "ann1": ["a", "b", "a", "b", "a", "a"],
    "ann2": ["a", "b", "a", "b", "b", "a"],
    "ann3": ["a", "b", "b", "b", "a", "a"],
}


def judged_batch(project, name):
    batch = BatchFactory(project=project, name=name)
    judge_items(batch, VOTES)
    gold = ItemFactory(batch=batch, gold="a")
    for username in VOTES:
        judge(gold, username, "a")
    return batch


def baselines(snapshot) -> dict[str, tuple[int, int]]:
    return {
        row["username"]: (row["consensus_agreement"]["baseline"]["n"], row["gold_accuracy"]["baseline"]["n"])
        for row in snapshot.report["drift"]
    }


@pytest.mark.parametrize("old_report", [False, True])
def test_the_consensus_baseline_comes_only_from_reports_on_regular_items(project, old_report):
    first = judged_batch(project, "week 1")
    stored = snapshot_compute(batch=first)
    assert stored.report["agreement_scope"] == "regular_items"
    if old_report:  # as a snapshot stored before the change: no scope, gold counted in
        report = {k: v for k, v in stored.report.items() if k != "agreement_scope"}
        AgreementSnapshot.objects.filter(pk=stored.pk).update(report=report)
    second = judged_batch(project, "week 2")
    latest = snapshot_compute(batch=second)
    earlier = {row["username"]: row["consensus_agreement"]["n"] for row in stored.report["annotators"]}
    assert all(n > 0 for n in earlier.values())
    for username, (consensus_n, gold_n) in baselines(latest).items():
        assert gold_n == 1  # gold accuracy: the same figure before and after, so always a baseline
        assert consensus_n == (0 if old_report else earlier[username])
