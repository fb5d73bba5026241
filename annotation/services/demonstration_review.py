"""A lead's review of a written demonstration: accept it, accept it with an edit (the text as written stays beside
the edit), or reject it with a reason. Only accepted demonstrations go into SFT snapshots.

A decision is final: a demonstration is reviewed once, while pending. There is no history table to keep an earlier
decision in, so changing one would lose it; a second review answers 409 `already_reviewed` with the decision that
stands, except the very same review sent again (a retried request), which answers as the first did.
"""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.import_format import LineInvalid, check_storable
from annotation.models import Demonstration
from core.errors import TandemError

ACCEPT, REJECT = "accept", "reject"
DECISIONS = (ACCEPT, REJECT)
REASON_MAX_CHARS = 2000


class InvalidReview(TandemError):
    status, code = 400, "invalid_review"


class AlreadyReviewed(TandemError):
    status, code = 409, "already_reviewed"


class OwnDemonstration(TandemError):
    """A lead who also writes demonstrations does not review their own: a second pair of eyes is the point."""

    status, code = 403, "own_demonstration"


class DemonstrationNotFound(TandemError):
    status, code = 404, "not_found"


@dataclass(frozen=True)
class Review:
    demonstration: Demonstration
    changed: bool  # False: the same review had already been made (a retry)


def demonstration_review(
    *,
    demonstration_id: int,
    reviewer: AbstractBaseUser,
    decision: str,
    edited_text: str = "",
    reason: str = "",
) -> Review:
    """Accepts (optionally with `edited_text`) or rejects (with a required `reason`) a pending demonstration.

    `edited_text` equal to the text as written is no edit. `reason` is a note on an acceptance, the cause of a
    rejection. The row is locked, so two reviewers at once make one decision and the other gets 409.
    """
    edited_text, reason = _validated(decision=decision, edited_text=edited_text, reason=reason)
    with transaction.atomic():
        demonstration = (
            Demonstration.objects.select_for_update(of=("self",))
            .select_related("batch__project")
            .filter(pk=demonstration_id)
            .first()
        )
        if demonstration is None:
            raise DemonstrationNotFound("No such demonstration.")
        if demonstration.writer_id is not None and demonstration.writer_id == reviewer.pk:
            raise OwnDemonstration("You wrote this demonstration: another lead reviews it.")
        if edited_text == demonstration.text:
            edited_text = ""
        limit = demonstration.batch.project.demonstration_max_chars
        if decision == ACCEPT and len(edited_text) > limit:
            raise InvalidReview(
                f"The edit is {len(edited_text):,} characters, over the project's limit of {limit:,}.",
                errors={"edited_text": [f"At most {limit:,} characters."]},
            )
        status = Demonstration.Status.ACCEPTED if decision == ACCEPT else Demonstration.Status.REJECTED
        if demonstration.status != Demonstration.Status.PENDING:
            same = (
                demonstration.status == status
                and demonstration.edited_text == edited_text
                and demonstration.review_reason == reason
                and demonstration.reviewed_by_id == reviewer.pk
            )
            if same:
                return Review(demonstration=demonstration, changed=False)
            raise AlreadyReviewed(
                f"This demonstration was already {demonstration.status}: a decision is final.",
                status=demonstration.status,
                reviewed_at=demonstration.reviewed_at.isoformat() if demonstration.reviewed_at else None,
            )
        demonstration.status = status
        demonstration.edited_text = edited_text
        demonstration.review_reason = reason
        demonstration.reviewed_by = reviewer
        demonstration.reviewed_at = timezone.now()
        demonstration.save(update_fields=["status", "edited_text", "review_reason", "reviewed_by", "reviewed_at"])
    return Review(demonstration=demonstration, changed=True)


def _validated(*, decision: str, edited_text: str | None, reason: str | None) -> tuple[str, str]:
    edited_text, reason = edited_text or "", (reason or "").strip()
    if decision not in DECISIONS:
        raise InvalidReview(
            f"Unknown decision {decision!r}: use accept or reject.", errors={"decision": ["accept or reject"]}
        )
    if decision == REJECT:
        if not reason:
            raise InvalidReview("A rejection needs a reason.", errors={"reason": ["Say why it is rejected."]})
        if edited_text:
            raise InvalidReview(
                "A rejected demonstration keeps no edit: accept it with the edit, or reject it.",
                errors={"edited_text": ["Only with accept."]},
            )
    if decision == ACCEPT and edited_text and not edited_text.strip():
        raise InvalidReview("The edit is empty: leave edited_text out to accept as written.")
    if len(reason) > REASON_MAX_CHARS:
        raise InvalidReview(
            f"The reason is {len(reason):,} characters, over {REASON_MAX_CHARS:,}.",
            errors={"reason": [f"At most {REASON_MAX_CHARS:,} characters."]},
        )
    try:
        check_storable([("edited_text", edited_text), ("reason", reason)])
    except LineInvalid as exc:
        raise InvalidReview(f"{exc}.") from None
    return edited_text, reason
