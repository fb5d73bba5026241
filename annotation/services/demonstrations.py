"""Demonstrations written by annotators: an idempotent submit on a demonstration assignment, the batch's writers per
item held by the same conditional UPDATE of judgment_count that holds a comparison item's overlap.

The review (accept, edit, reject) is another service's; nothing here reads or says what a review decided.
"""

import re
import uuid

from django.db import connection, transaction
from django.utils import timezone

from annotation.errors import BatchClosed, JudgmentConflict, LeaseExpired, NotFound, OverlapFull, WrongTask
from annotation.models import Assignment, Batch, Demonstration

# The session's task count is the judgment path's: one UPDATE that ends the session at its limit.
from annotation.services.judgments import _count_task
from core.errors import TandemError


class TextTooShort(TandemError):
    status, code = 400, "text_too_short"


class TextTooLong(TandemError):
    status, code = 400, "text_too_long"


class InvalidText(TandemError):
    status, code = 400, "invalid"


_NOT_FOUND = "No such assignment."
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_A_DEMONSTRATION = "This item asks for a judgment of two responses, not a written response."
_CONFLICT = "This assignment already has a different demonstration."
_FULL = "This prompt already has all the written responses it needs."
_COUNT_SQL = (
    "UPDATE annotation_item SET judgment_count = judgment_count + 1 WHERE id = %s AND judgment_count < %s "
    "RETURNING judgment_count"
)


def demonstration_text(text: str) -> str:
    """The text as stored: line ends made \\n, surrounding blank space dropped (what the length limits count, in
    characters)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


@transaction.atomic
def demonstration_submit(*, assignment_id: uuid.UUID, annotator_id: int, text: str) -> tuple[Demonstration, bool]:
    """Stores the annotator's written response on their demonstration assignment; (demonstration, created).

    The same text again returns the stored one (created False); another text raises JudgmentConflict (409). Text
    outside the project's demonstration_min_chars / demonstration_max_chars raises TextTooShort / TextTooLong, a
    comparison assignment WrongTask; an expired (or skipped) lease, a closed batch or a prompt that has its
    writers raise the 410s of the judgment path. Seconds are measured here, from the lease to now.
    """
    assignment = _locked_assignment(assignment_id=assignment_id, annotator_id=annotator_id)
    if assignment is None:
        raise NotFound(_NOT_FOUND)
    item, project = assignment.item, assignment.item.project
    if item.batch.kind != Batch.Kind.DEMONSTRATION:
        raise WrongTask(_NOT_A_DEMONSTRATION)
    text = _validated(text, min_chars=project.demonstration_min_chars, max_chars=project.demonstration_max_chars)
    if assignment.judged_at is not None:
        # The locked row is the latest version: a retried submit (or one from another tab) finds the stored one.
        existing = Demonstration.objects.filter(assignment=assignment).first()
        if existing is None or existing.text != text:
            raise JudgmentConflict(_CONFLICT)
        return existing, False
    now = timezone.now()
    if now > assignment.lease_expires_at:
        raise LeaseExpired("The lease on this item expired; it went back to the pool.")
    if item.batch.status != Batch.Status.OPEN:
        raise BatchClosed("This batch was closed.")
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_SQL, [item.pk, item.batch.writers_per_item])
        if cursor.fetchone() is None:
            raise OverlapFull(_FULL)
    demonstration = Demonstration.objects.create(
        assignment=assignment,
        item_id=item.pk,
        batch_id=item.batch_id,
        writer_id=annotator_id,
        text=text,
        seconds=(now - assignment.leased_at).total_seconds(),
    )
    Assignment.objects.filter(pk=assignment.pk).update(judged_at=now)
    _count_task(session_id=assignment.session_id, now=now)
    return demonstration, True


def _validated(text: str, *, min_chars: int, max_chars: int) -> str:
    if not isinstance(text, str) or "\x00" in text or _SURROGATE.search(text):
        raise InvalidText("text must be a string of characters (no NUL, no lone surrogates).", field="text")
    text = demonstration_text(text)
    if len(text) < min_chars:
        raise TextTooShort(
            f"Write at least {min_chars} characters (this is {len(text)}).", field="text", min_chars=min_chars
        )
    if len(text) > max_chars:
        raise TextTooLong(
            f"Write at most {max_chars} characters (this is {len(text)}).", field="text", max_chars=max_chars
        )
    return text


def _locked_assignment(*, assignment_id, annotator_id: int) -> Assignment | None:
    """The annotator's assignment, row-locked (first, as the judgment path locks), with its item, batch and project.

    The item's row is not locked here: the count UPDATE takes its lock and re-checks the writers under it.
    """
    return (
        Assignment.objects.select_for_update(of=("self",))
        .select_related("item__batch", "item__project")
        .filter(pk=assignment_id, annotator_id=annotator_id)
        .first()
    )
