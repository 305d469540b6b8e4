"""The log format without a server: ``log_safe`` and ``EscapingFormatter`` keep every record on one line, with
what a client controls escaped (issue 16.2); the server-level checks are in test_api_hardening.py."""

from __future__ import annotations

import logging
import sys

import pytest

from redline.api.observability import EscapingFormatter, log_safe


@pytest.mark.parametrize("raw,logged", [
    ("/v1/users/alice/export", "/v1/users/alice/export"),
    ("naïve 中文 emoji 🙂", "naïve 中文 emoji 🙂"),  # printable text stays readable
    ("a\nb\rc\td", "a\\nb\\rc\\td"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("nel\x85csi\x9bline\u2028para\u2029", "nel\\x85csi\\x9bline\\u2028para\\u2029"),
    ("bidi\u202eevil", "bidi\\u202eevil"),
    ("nul\x00del\x7f", "nul\\x00del\\x7f"),
    ("lone\ud800", "lone\\ud800"),
    ("back\\nslash", "back\\\\nslash"),  # a literal backslash-n is not mistaken for an escaped newline
])
def test_log_safe_escapes_every_unprintable_character(raw, logged):
    assert log_safe(raw) == logged
    assert len(log_safe(raw).splitlines()) == 1


def _record(msg: str, *args, request_id: str = "rid-1", exc_info=None) -> logging.LogRecord:
    record = logging.LogRecord("redline.access", logging.INFO, __file__, 1, msg, args, exc_info)
    record.request_id = request_id
    return record


def test_a_record_is_one_line_whatever_its_arguments_and_request_id_hold():
    forged = "x\n2026-11-23 00:00:00,000 INFO redline.access [forged] DELETE /v1/users/alice 200 1.0ms"
    line = EscapingFormatter().format(_record("%s %s %d %.1fms %s", "GET", f"/v1/users/{forged}/export", 404, 1.0,
                                              "ua\x1b[2J\x85", request_id="id\r\nforged"))
    assert line.splitlines() == [line]
    assert line.endswith(" INFO redline.access [id\\r\\nforged] GET /v1/users/x\\n2026-11-23 00:00:00,000 INFO "
                         "redline.access [forged] DELETE /v1/users/alice 200 1.0ms/export 404 1.0ms ua\\x1b[2J\\x85")


def test_a_traceback_follows_on_indented_escaped_lines():
    try:
        raise ValueError("bad input\n2026-11-23 00:00:00,000 INFO redline.access [forged] line \x1b[31m")
    except ValueError:
        text = EscapingFormatter().format(_record("unhandled error on %s", "/x", exc_info=sys.exc_info()))
    first, *rest = text.split("\n")
    assert first.endswith("[rid-1] unhandled error on /x")
    assert rest[0] == "    Traceback (most recent call last):"
    assert all(line.startswith("    ") for line in rest)  # no line of it can pass for a record
    assert rest[-1] == "    2026-11-23 00:00:00,000 INFO redline.access [forged] line \\x1b[31m"
