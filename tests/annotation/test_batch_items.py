"""Batches made by another app (annotation.services.batch_items): an empty batch of a kind, then prepared items, all
or none, under the import's item rules."""

import pytest

from annotation.models import Batch, Item
from annotation.services.batch_items import (
    BatchNameTaken,
    BatchNotOpen,
    PreparedItem,
    PreparedItemsInvalid,
    batch_create,
    batch_items_add,
)
from annotation.services.projects import project_current_criteria
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def prepared(key: str, **fields) -> PreparedItem:
    return PreparedItem(
        key=key, **{"prompt": f"Prompt {key}?", "response_a_text": "A.", "response_b_text": "B.", **fields}
    )


def test_a_batch_of_a_kind_gets_its_items_in_order(project):
    batch = batch_create(project=project, name="round 1", kind=Batch.Kind.EVALUATION)
    assert batch.kind == "evaluation" and batch.criteria_version == project_current_criteria(project=project)
    items = batch_items_add(
        batch=batch,
        items=[
            prepared("1", external_id="p1", stratum="adversarial", category="pii"),
            prepared("2", prompt="", messages=[{"role": "user", "content": "Hi"}], response_b_text="A."),
        ],
    )
    assert [i.pk for i in items] == list(batch.items.order_by("pk").values_list("pk", flat=True))
    first, second = items
    assert (first.external_id, first.stratum, first.category, first.dedupe_key) == (
        "p1",
        "adversarial",
        "pii",
        f"evaluation:{batch.pk}:1",
    )
    assert second.messages == [{"role": "user", "content": "Hi"}] and second.response_a_text == second.response_b_text
    # The same keys in another batch of the project: no collision, as each batch's keys are its own.
    other = batch_create(project=project, name="round 2", kind=Batch.Kind.EVALUATION)
    assert len(batch_items_add(batch=other, items=[prepared("1"), prepared("2")])) == 2


def test_bad_items_are_all_named_and_none_is_added(project):
    batch = batch_create(project=project, name="round 1")
    with pytest.raises(PreparedItemsInvalid) as refused:
        batch_items_add(
            batch=batch,
            items=[
                prepared("ok"),
                prepared("no-prompt", prompt=""),
                prepared("red", stratum="red_team"),
                prepared("assistant-last", prompt="", messages=[{"role": "assistant", "content": "x"}]),
                prepared("nul", response_a_text="bad\x00text"),
                prepared("ok"),
            ],
        )
    problems = refused.value.extra["problems"]
    assert [p.split(":")[0] for p in problems] == [
        "item 1 (no-prompt)",
        "item 2 (red)",
        "item 3 (assistant-last)",
        "item 4 (nul)",
        "item 5 (ok)",
    ]
    assert not Item.objects.exists()


def test_names_closed_batches_and_foreign_criteria_are_refused(project):
    batch = batch_create(project=project, name="round 1")
    with pytest.raises(BatchNameTaken):
        batch_create(project=project, name=" round 1 ")
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.CLOSED)
    with pytest.raises(BatchNotOpen):
        batch_items_add(batch=batch, items=[prepared("1")])
    other = ProjectFactory(name="Other")
    with pytest.raises(PreparedItemsInvalid, match="Criteria version 1 is not one of Demo"):
        batch_create(project=project, name="round 2", criteria_version=project_current_criteria(project=other))
    assert Batch.objects.count() == 1 and not Item.objects.exists()
