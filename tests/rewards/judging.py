"""Writing judgments straight into the tables, for rewards tests that need known votes rather than a live session."""

from datetime import timedelta

from django.utils import timezone

from annotation.models import AnnotationSession, Assignment, Item, Judgment
from tests.factories import ItemFactory, UserFactory


def judge(item: Item, username: str, choice: str, *, shown_left: str = "a", seconds: float = 10.0) -> Judgment:
    user = UserFactory(username=username)
    now = timezone.now()
    session, _ = AnnotationSession.objects.get_or_create(
        project=item.project,
        annotator=user,
        defaults={"started_at": now, "expires_at": now + timedelta(hours=1), "max_tasks": 10_000},
    )
    assignment = Assignment.objects.create(
        session=session,
        item=item,
        annotator=user,
        left_is_a=shown_left == "a",
        leased_at=now,
        lease_expires_at=now + timedelta(minutes=10),
        judged_at=now,
    )
    Item.objects.filter(pk=item.pk).update(judgment_count=item.judgments.count() + 1)
    return Judgment.objects.create(
        assignment=assignment,
        item=item,
        batch=item.batch,
        annotator=user,
        choice=choice,
        shown_left=shown_left,
        seconds=seconds,
        too_fast=seconds < item.project.min_seconds_per_judgment,
        is_gold=bool(item.gold),
        gold_correct=(choice == item.gold) if item.gold else None,
    )


def judge_items(batch, table: dict[str, list[str]], **item_fields) -> list[Item]:
    """table: username -> one choice per item (None skips); items are created in order."""
    n = len(next(iter(table.values())))
    items = [ItemFactory(batch=batch, **item_fields) for _ in range(n)]
    for position, item in enumerate(items):
        for username, choices in table.items():
            if choices[position] is not None:
                judge(item, username, choices[position], shown_left="ab"[(position + len(username)) % 2])
    return items
