"""Agreement per criteria dimension, and withdrawn items counted nowhere: computed by `manage.py agreement`, read
through the lead's API and page, and checked against the `krippendorff` package on the same answers."""

import krippendorff
import numpy as np
import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from annotation.models import Item, Judgment
from tests.factories import BatchFactory, ItemFactory
from tests.rewards.judging import judge

ANNOTATORS = ("dim-1", "dim-2", "dim-3", "dim-4")
CODES = {"a": 0, "b": 1, "tie": 2}


@pytest.fixture
def judged(project):
    """14 regular items (one withdrawn later), 2 gold items; four annotators answer the choice and each dimension
    from a seeded generator, with "na" now and then (no answer on that dimension)."""
    rng = np.random.default_rng(7)
    batch = BatchFactory(project=project, name="dims")
    items = [ItemFactory(batch=batch) for _ in range(14)] + [ItemFactory(batch=batch, gold="a") for _ in range(2)]
    keys = [d["key"] for d in batch.criteria_version.dimensions]
    assert len(keys) >= 2
    for item in items:
        for username in ANNOTATORS:
            judgment = judge(item, username, str(rng.choice(["a", "b", "tie"], p=[0.6, 0.3, 0.1])))
            answers = {key: str(rng.choice(["a", "b", "tie", "na"], p=[0.55, 0.3, 0.1, 0.05])) for key in keys}
            Judgment.objects.filter(pk=judgment.pk).update(dimensions=answers)
    withdrawn = items[0]
    Item.objects.filter(pk=withdrawn.pk).update(withdrawn_at=timezone.now())
    return batch, items, withdrawn, keys


def reference_alpha(judgments, value) -> float:
    """krippendorff.alpha on annotators x items, NaN where no answer."""
    annotators = sorted({j.annotator_id for j in judgments})
    item_ids = sorted({j.item_id for j in judgments})
    matrix = np.full((len(annotators), len(item_ids)), np.nan)
    for j in judgments:
        code = value(j)
        if code is not None:
            matrix[annotators.index(j.annotator_id), item_ids.index(j.item_id)] = code
    return krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")


def test_agreement_per_dimension_and_without_withdrawn_items(judged, project, lead, lead_client):
    batch, _items, withdrawn, keys = judged
    call_command("agreement", project=project.name)
    body = lead_client.get(f"/api/v1/projects/{project.pk}/agreement/").json()
    (row,) = [b for b in body["batches"] if b["batch_id"] == batch.pk]

    counted = [
        j
        for j in Judgment.objects.filter(batch=batch).select_related("item")
        if j.item.gold == "" and j.item_id != withdrawn.pk
    ]
    # The batch's own alpha leaves out the gold items and the withdrawn one.
    choice_codes = {"a": 0, "b": 1, "tie": 2, "both_bad": 3}
    assert row["krippendorff_alpha"] == pytest.approx(
        reference_alpha(counted, lambda j: choice_codes[j.choice]), abs=1e-9
    )
    assert row["judgments"] == 15 * len(ANNOTATORS)  # the withdrawn item's four judgments count nowhere

    by_key = {d["key"]: d for d in row["dimensions"]}
    assert list(by_key) == sorted(keys, key=lambda k: [d["key"] for d in batch.criteria_version.dimensions].index(k))
    for key in keys:
        expected = reference_alpha(counted, lambda j, key=key: CODES.get(j.dimensions.get(key)))
        assert by_key[key]["alpha"]["value"] == pytest.approx(expected, abs=1e-9), key
        answered = sum(1 for j in counted if j.dimensions.get(key) in CODES)
        assert by_key[key]["judgments"] == answered

    # The lead's page shows the table.
    client = Client()
    client.force_login(lead)
    page = client.get(f"/lead/projects/{project.pk}/").content.decode()
    assert 'id="dimension-table"' in page
    for key in keys:
        assert f'data-dimension="{key}"' in page
