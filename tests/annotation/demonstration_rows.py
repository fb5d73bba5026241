"""Demonstration rows for the review tests, made straight in the tables (a demonstration session, its assignment and
the written Demonstration), as the writing loop (annotation.services.demonstrations) leaves them."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from annotation.models import AnnotationSession, Assignment, Batch, Demonstration, Item
from annotation.services import member_add
from tests.annotation.demonstration_fixtures import demonstration_batch
from tests.factories import UserFactory


def empty_demonstration_batch(project, name: str = "demos") -> Batch:
    """An open demonstration batch with no item yet (the tests add theirs with prompt_item)."""
    return demonstration_batch(project, prompts=0, name=name)


def prompt_item(batch: Batch, external_id: str, prompt: str = "", messages=None) -> Item:
    return Item.objects.create(
        project=batch.project,
        batch=batch,
        external_id=external_id,
        dedupe_key=f"id:{external_id}",
        prompt=prompt if messages is None else "",
        messages=messages,
        response_a_text="",
        response_b_text="",
    )


def written(item: Item, username: str, text: str, *, seconds: float = 60.0, member: bool = True) -> Demonstration:
    """`username` (made an annotator of the project if need be) wrote `text` for the item."""
    # Not UserFactory: it sets the password again, which logs out a client already logged in as that user.
    user = get_user_model().objects.filter(username=username).first() or UserFactory(username=username)
    if member and not item.project.memberships.filter(user=user).exists():
        member_add(project=item.project, username=username, role="annotator")
    now = timezone.now()
    session, _ = AnnotationSession.objects.get_or_create(
        project=item.project,
        annotator=user,
        kind=AnnotationSession.Kind.DEMONSTRATION,
        defaults={"started_at": now, "expires_at": now + timedelta(hours=1), "max_tasks": 100},
    )
    assignment = Assignment.objects.create(
        session=session,
        item=item,
        annotator=user,
        left_is_a=True,
        leased_at=now - timedelta(seconds=seconds),
        lease_expires_at=now + timedelta(minutes=10),
        judged_at=now,
    )
    return Demonstration.objects.create(
        assignment=assignment, item=item, batch=item.batch, writer=user, text=text, seconds=seconds
    )
