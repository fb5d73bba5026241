"""SFT snapshots for the run tests: a closed demonstration batch whose answers follow a learnable pattern, written,
reviewed and accepted, then exported as an SFT snapshot by rewards.services.sft_datasets.sft_dataset_create."""

import uuid

from django.utils import timezone

from annotation.models import Batch, Demonstration
from rewards.services.sft_datasets import sft_dataset_create
from tests.factories import BatchFactory, UserFactory, item_row

WORDS = ["apple", "river", "stone", "cloud", "tiger", "piano", "lemon", "forest"]


def pattern_answer(n: int) -> tuple[str, str]:
    """A prompt and the answer a model can learn from a few dozen examples: the prompt's word, three times."""
    word = WORDS[n % len(WORDS)]
    return f"Say {word} three times, number {n}.", f"{word} {word} {word}."


def reviewed_demonstration_batch(
    project, *, count: int = 40, writers=("writer-a", "writer-b"), reviewer="reviewer-r"
) -> Batch:
    """A closed demonstration batch of `count` prompts, each answered by one of `writers` and accepted by `reviewer`
    (every fifth with an edit, which is what the snapshot takes); one more is rejected and one still pending."""
    batch = BatchFactory(project=project, name=f"demos-{uuid.uuid4().hex[:6]}", kind=Batch.Kind.DEMONSTRATION)
    people = [UserFactory(username=f"{name}-{batch.pk}") for name in writers]
    lead = UserFactory(username=f"{reviewer}-{batch.pk}")
    now = timezone.now()
    for n in range(count + 2):
        prompt, answer = pattern_answer(n)
        item = item_row(batch, n, {"prompt": prompt}, response_a_text="", response_b_text="")
        item.save()
        status = Demonstration.Status.ACCEPTED if n < count else Demonstration.Status.REJECTED
        if n == count + 1:
            status = Demonstration.Status.PENDING
        edited = n < count and n % 5 == 0
        Demonstration.objects.create(
            item=item,
            batch=batch,
            writer=people[n % len(people)],
            text=answer if not edited else answer.upper(),
            edited_text=answer if edited else "",
            status=status,
            review_reason="Off topic." if status == Demonstration.Status.REJECTED else "",
            reviewed_by=lead if status != Demonstration.Status.PENDING else None,
            reviewed_at=now if status != Demonstration.Status.PENDING else None,
        )
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.CLOSED, closed_at=now)
    batch.refresh_from_db()
    return batch


def make_sft_snapshot(project, *, count: int = 40, validation_fraction: float = 0.2, created_by=None):
    """An SFT snapshot of a fresh demonstration batch, through the snapshot service."""
    batch = reviewed_demonstration_batch(project, count=count)
    return sft_dataset_create(
        project=project, batches=[batch], validation_fraction=validation_fraction, seed=1, user=created_by
    )
