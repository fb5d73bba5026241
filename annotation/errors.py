"""Domain errors of the annotator loop. Each carries the contract's `code` and the HTTP status it maps to."""


class AnnotationError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotMember(AnnotationError):
    status, code = 403, "not_member"


class OnBreak(AnnotationError):
    status, code = 429, "on_break"


class SessionLimit(AnnotationError):
    status, code = 410, "session_limit"


class LeaseExpired(AnnotationError):
    status, code = 410, "lease_expired"


class OverlapFull(AnnotationError):
    status, code = 410, "overlap_full"


class BatchClosed(AnnotationError):
    status, code = 410, "batch_closed"


class JudgmentConflict(AnnotationError):
    status, code = 409, "conflict"


class NotFound(AnnotationError):
    status, code = 404, "not_found"


class InvalidJudgment(AnnotationError):
    status, code = 400, "invalid"


class NotQualified(AnnotationError):
    """The annotator failed the project's qualification: no live items until a lead allows another attempt."""

    status, code = 403, "not_qualified"
