"""Randomisation as the annotator meets it: which response is on the left, and where gold items turn up.

Both are statistical tests at a 1e-3 level: a correct server fails them about once in a thousand runs.
"""

import itertools
import statistics
import uuid

import pytest
from django.db.models import F
from django.utils import timezone
from scipy.stats import binomtest
from statsmodels.sandbox.stats.runs import runstest_1samp

from annotation.models import Assignment, Item
from tests.factories import BatchFactory, ItemFactory

pytestmark = pytest.mark.django_db

DRAWS = 2000
ALPHA = 1e-3


def serve(client, project, draws: int) -> list[tuple[dict, Assignment]]:
    """`draws` items through the API, each closed before the next so every call draws afresh."""
    session_id = client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    served = []
    for _ in range(draws):
        response = client.get(f"/api/v1/sessions/{session_id}/next/")
        assert response.status_code == 200
        body = response.json()
        # What is judged is beside the point here: closing the lease and filling the item (overlap 1) moves the
        # session on, for two UPDATEs instead of a judgment request.
        Assignment.objects.filter(pk=body["assignment_id"]).update(judged_at=timezone.now())
        Item.objects.filter(assignments__pk=body["assignment_id"]).update(judgment_count=F("judgment_count") + 1)
        served.append(body)
    assignments = Assignment.objects.select_related("item").in_bulk([b["assignment_id"] for b in served])
    return [(body, assignments[uuid.UUID(body["assignment_id"])]) for body in served]


def items(batch, n: int, **fields) -> None:
    Item.objects.bulk_create(ItemFactory.build_batch(n, batch=batch, project=batch.project, **fields))


def test_left_right_draw_is_balanced_over_2000_assignments(annotator_client, project):
    project.gold_rate = 0
    project.overlap = 1  # a judged item leaves the queue, as it would with a full team
    project.session_max_tasks = DRAWS + 1
    project.save()
    items(BatchFactory(project=project), DRAWS)
    served = serve(annotator_client, project, DRAWS)

    a_on_left = 0
    for body, assignment in served:
        item = assignment.item
        # What the annotator saw agrees with what was stored for the judgment's canonical mapping.
        assert body["left"]["text"] == (item.response_a_text if assignment.left_is_a else item.response_b_text)
        assert body["right"]["text"] == (item.response_b_text if assignment.left_is_a else item.response_a_text)
        a_on_left += assignment.left_is_a
    result = binomtest(a_on_left, DRAWS, 0.5, alternative="two-sided")
    assert result.pvalue > ALPHA, f"A shown on the left {a_on_left} times in {DRAWS}: p = {result.pvalue:.2g}"
    # Not alternating either: the sequence of sides has as many runs as independent coin flips would.
    sides = [float(a.left_is_a) for _b, a in served]
    _z, p_runs = runstest_1samp(sides, cutoff=0.5, correction=False)
    assert p_runs > ALPHA, f"left/right sequence has a suspicious number of runs: p = {p_runs:.2g}"


def test_gold_is_served_at_the_projects_rate_at_random_positions(annotator_client, project):
    project.gold_rate = 0.2
    project.overlap = 1
    project.session_max_tasks = DRAWS + 1
    project.save()
    batch = BatchFactory(project=project)
    items(batch, DRAWS)
    items(batch, 800, gold="a")  # more gold than 0.2 x DRAWS, so a gold draw never runs out and falls back
    served = serve(annotator_client, project, DRAWS)

    is_gold = [bool(a.item.gold) for _b, a in served]
    n_gold = sum(is_gold)
    result = binomtest(n_gold, DRAWS, 0.2, alternative="two-sided")
    assert result.pvalue > ALPHA, f"{n_gold} gold in {DRAWS} draws at rate 0.2: p = {result.pvalue:.2g}"
    low, high = result.proportion_ci(confidence_level=1 - ALPHA)
    assert low <= 0.2 <= high

    # Positions: gaps between gold items vary like a geometric draw's (sd ≈ mean), not a fixed "every 5th".
    positions = [n for n, gold in enumerate(is_gold) if gold]
    gaps = [b - a for a, b in itertools.pairwise(positions)]
    assert len(set(gaps)) > 10
    assert statistics.pstdev(gaps) > 0.6 * statistics.mean(gaps)
    # The runs test's normal approximation is loose in the tails for a 0.2/0.8 sequence: at ALPHA it failed a
    # genuinely random draw (p = 0.0003) once. A fixed pattern ("every 5th") gives p far below either threshold.
    _z, p_runs = runstest_1samp([float(g) for g in is_gold], cutoff=0.5, correction=False)
    assert p_runs > ALPHA / 10, f"gold positions have a suspicious number of runs: p = {p_runs:.2g}"
    # Gold or not, the payload has the same keys.
    assert {frozenset(b) for b, _a in served} == {frozenset(served[0][0])}
