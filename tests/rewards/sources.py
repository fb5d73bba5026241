"""Labelled sources and demonstrations written straight into the tables, for snapshot tests that need known rows
rather than an import or a review (annotation's own tests cover those)."""

import hashlib
import uuid

from django.utils import timezone

from annotation.models import Batch, Demonstration, ImportRecord, Item
from tests.factories import BatchFactory, UserFactory, item_row


def snapshot_action(client, selected: list[int], sources: list[int], **fields):
    """The batch changelist's "make_dataset_snapshot" action applied to `selected`, taking `sources`, with a
    validation fraction of 0.1 and seed 0 unless `fields` say otherwise."""
    return client.post(
        "/admin/annotation/batch/",
        {
            "action": "make_dataset_snapshot",
            "_selected_action": selected,
            "apply": "1",
            "validation_fraction": "0.1",
            "seed": "0",
            "sources": sources,
            **fields,
        },
    )


def make_source(
    project,
    name: str,
    pairs: list[dict],
    *,
    source_format: str = Batch.SourceFormat.ITEMS,
    files: tuple[str, ...] = ("labels.jsonl",),
) -> Batch:
    """A closed labelled source of `pairs`, each {"prompt" or "messages", "choice": a|b|tie, "votes"?, "withdrawn"?};
    A's text is "first <n>" and B's "second <n>". One ImportRecord per file name, with the sha256 of the name."""
    batch = BatchFactory(
        project=project,
        name=name,
        kind=Batch.Kind.LABELLED,
        source_format=source_format,
        status=Batch.Status.CLOSED,
        closed_at=timezone.now(),
    )
    Item.objects.bulk_create(
        item_row(
            batch,
            n,
            spec,
            response_a_text=f"first {n}",
            response_a_model="source-a",
            response_b_text=f"second {n}",
            response_b_model="source-b",
            labelled_choice=spec["choice"],
            labelled_votes=spec.get("votes"),
            withdrawn_at=timezone.now() if spec.get("withdrawn") else None,
        )
        for n, spec in enumerate(pairs)
    )
    for filename in files:
        ImportRecord.objects.create(
            project=project,
            batch=batch,
            filename=filename,
            status=ImportRecord.Status.IMPORTED,
            lines=len(pairs),
            created=len(pairs),
            sha256=hashlib.sha256(filename.encode()).hexdigest(),
        )
    ImportRecord.objects.create(project=project, batch=batch, filename="refused.jsonl", status="rejected")
    return batch


def make_demonstration_source(project, name: str, answers: list[tuple[str | list, str]]) -> Batch:
    """A closed labelled source of demonstrations: (prompt or messages, answer) each, imported (no writer, accepted)."""
    batch = BatchFactory(
        project=project,
        name=name,
        kind=Batch.Kind.LABELLED,
        source_format=Batch.SourceFormat.DEMONSTRATIONS,
        status=Batch.Status.CLOSED,
        closed_at=timezone.now(),
    )
    for n, (prompt, answer) in enumerate(answers):
        spec = {"prompt": prompt} if isinstance(prompt, str) else {"messages": prompt}
        item = item_row(batch, n, spec, response_a_text="", response_b_text="")
        item.save()
        Demonstration.objects.create(item=item, batch=batch, text=answer, status=Demonstration.Status.ACCEPTED)
    ImportRecord.objects.create(
        project=project,
        batch=batch,
        filename=f"{name}.jsonl",
        status=ImportRecord.Status.IMPORTED,
        lines=len(answers),
        created=len(answers),
        sha256=hashlib.sha256(name.encode()).hexdigest(),
    )
    return batch


def make_demonstration_batch(project, rows: list[dict], *, name: str | None = None, closed: bool = False) -> Batch:
    """A demonstration batch: one item per row {"prompt" or "messages", "demos": [(writer, status, text, edit?)],
    "withdrawn"?}; accepted and rejected ones reviewed by "lead-reviewer"."""
    batch = BatchFactory(project=project, name=name or f"demos-{uuid.uuid4().hex[:6]}", kind=Batch.Kind.DEMONSTRATION)
    reviewer = UserFactory(username="lead-reviewer")
    now = timezone.now()
    for n, row in enumerate(rows):
        item = item_row(
            batch, n, row, response_a_text="", response_b_text="", withdrawn_at=now if row.get("withdrawn") else None
        )
        item.save()
        for writer, status, text, *edit in row.get("demos", ()):
            reviewed = status != Demonstration.Status.PENDING
            Demonstration.objects.create(
                item=item,
                batch=batch,
                writer=UserFactory(username=writer),
                text=text,
                edited_text=edit[0] if edit else "",
                status=status,
                review_reason="Not what was asked." if status == Demonstration.Status.REJECTED else "",
                reviewed_by=reviewer if reviewed else None,
                reviewed_at=now if reviewed else None,
                seconds=30.0,
            )
    if closed:
        Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.CLOSED, closed_at=now)
        batch.refresh_from_db()
    return batch
