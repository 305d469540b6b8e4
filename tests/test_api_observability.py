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


def _app_failing_with(renderer):
    """A route that raises, behind RequestMiddleware with ``renderer`` for the 500 (or none)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from redline.api.observability import Metrics, RequestMiddleware

    def broken(request):
        raise RuntimeError("a bug")

    return Starlette(routes=[Route("/x", broken), Route("/ui/x", broken)], middleware=[
        Middleware(RequestMiddleware, max_body_bytes=1024, metrics=Metrics(), unexpected=renderer)])


def test_an_unhandled_error_is_a_500_with_the_request_id_rendered_by_the_app_or_as_the_error_body(caplog):
    from starlette.responses import HTMLResponse
    from starlette.testclient import TestClient

    from redline.api.observability import RequestIdFilter

    caplog.handler.addFilter(RequestIdFilter())

    def page_for_ui(request):
        if request.url.path.startswith("/ui"):
            return HTMLResponse("<p>internal error</p>", status_code=500)
        raise ValueError("rendering failed too")

    for renderer in (None, page_for_ui):
        with TestClient(_app_failing_with(renderer)) as client:  # raises if an exception got past the middleware
            resp = client.get("/x", headers={"X-Request-ID": "bug-1"})
            assert resp.status_code == 500 and resp.headers["x-request-id"] == "bug-1"
            assert resp.json() == {"error": {"message": "internal error", "type": "server_error",
                                             "code": "internal_error"}}
            if renderer is not None:
                page = client.get("/ui/x", headers={"X-Request-ID": "bug-2"})
                assert (page.status_code, page.text, page.headers["x-request-id"]) == (
                    500, "<p>internal error</p>", "bug-2")
    assert [r.request_id for r in caplog.records if r.getMessage() == "unhandled error on GET /x"] == ["bug-1"] * 2
