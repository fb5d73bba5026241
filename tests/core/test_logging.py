"""An expected refusal is one line in the log; a server error keeps its traceback."""

import logging

from core.logging import RefusalsInOneLine


def _record(status: int) -> logging.LogRecord:
    try:
        raise PermissionError("no")
    except PermissionError:
        import sys

        record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Forbidden: /x/", (), sys.exc_info())
    record.status_code = status
    return record


def test_a_403_is_one_line_and_a_500_keeps_its_traceback():
    formatter = logging.Formatter("%(levelname)s %(message)s")
    refusal, failure = _record(403), _record(500)
    assert RefusalsInOneLine().filter(refusal) and RefusalsInOneLine().filter(failure)
    assert formatter.format(refusal) == "WARNING Forbidden: /x/"
    assert "Traceback" in formatter.format(failure)


def test_the_console_handler_uses_it(settings):
    assert "refusals_in_one_line" in settings.LOGGING["handlers"]["console"]["filters"]
