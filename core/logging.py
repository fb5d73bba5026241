"""Logging filters. A refusal the product means to give (403, 404, 429: a 4xx) is logged as its one line; Django
attaches the exception's traceback to it, which printed a full traceback for every ordinary 403. Server errors
(5xx) keep theirs."""

import logging


class RefusalsInOneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500 and record.exc_info:
            record.exc_info = None
            record.exc_text = None
        return True
