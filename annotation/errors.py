"""Domain errors of the annotator loop. Each carries the contract's `code` and the HTTP status it maps to."""

from core.errors import TandemError


class NotMember(TandemError):
    status, code = 403, "not_member"


class OnBreak(TandemError):
    status, code = 429, "on_break"


class SessionLimit(TandemError):
    status, code = 410, "session_limit"


class LeaseExpired(TandemError):
    status, code = 410, "lease_expired"


class OverlapFull(TandemError):
    status, code = 410, "overlap_full"


class BatchClosed(TandemError):
    status, code = 410, "batch_closed"


class JudgmentConflict(TandemError):
    status, code = 409, "conflict"


class NotFound(TandemError):
    status, code = 404, "not_found"


class InvalidJudgment(TandemError):
    status, code = 400, "invalid"


class NotQualified(TandemError):
    """The annotator failed the project's qualification: no live items until a lead allows another attempt."""

    status, code = 403, "not_qualified"


class WrongTask(TandemError):
    """A judgment sent for a demonstration assignment (one asks for a written response), or a demonstration sent
    for a comparison one."""

    status, code = 409, "wrong_task"
