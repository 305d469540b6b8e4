"""The log format of every redline process (API, learner, supervisor): one record is one line, stamped with the
request (or job) id being handled, with every value a client controls escaped (``log_safe``).

It imports no other part of redline (see ``redline.runtime``).
"""

from __future__ import annotations

import contextvars
import logging

__all__ = ["request_id_var", "RequestIdFilter", "EscapingFormatter", "log_safe", "LOG_FORMAT", "configure_logging"]

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def log_safe(value: object) -> str:
    """``value`` as text that stays on one log line and cannot steer a terminal: every character that is not
    printable (CR, LF, NEL, the line and paragraph separators, ESC and the other controls, bidi overrides,
    lone surrogates) becomes a backslash escape, and a backslash becomes two, so an escape is unambiguous.

    >>> log_safe("/x\\n2026-11-23 INFO forged \\x1b[31m")
    '/x\\\\n2026-11-23 INFO forged \\\\x1b[31m'
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else _escape(c) for c in text)


class EscapingFormatter(logging.Formatter):
    """``LOG_FORMAT`` with the message and the request id passed through ``log_safe``: one record is one line
    however a client spells its path, headers or ids. A traceback follows on lines of its own, each indented
    (an exception message may quote client input, so no line of it can pass for a record of its own)."""

    def __init__(self, fmt: str | None = None):
        super().__init__(fmt or LOG_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord({**record.__dict__, "msg": log_safe(record.getMessage()), "args": None,
                                      "request_id": log_safe(getattr(record, "request_id", "-")),
                                      "exc_info": None, "exc_text": None, "stack_info": None})
        lines = [super().format(safe)]
        if record.exc_info:
            lines += self.formatException(record.exc_info).splitlines()
        if record.stack_info:
            lines += self.formatStack(record.stack_info).splitlines()
        return "\n    ".join([lines[0], *map(log_safe, lines[1:])])


class RequestIdFilter(logging.Filter):
    """Stamps every log record with the id of the request (or job) being handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def configure_logging(level: int) -> None:
    """One format for every log line, each stamped with the request (or job) id, client-controlled values
    escaped (``EscapingFormatter``)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(EscapingFormatter())
        handler.addFilter(RequestIdFilter())
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
