"""Request ids, access logging, body limits, the last-resort 500 and Prometheus metrics (one pure ASGI
middleware); and the log format, which escapes what clients control (``log_safe``)."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.responses import Response

from .errors import error_body

__all__ = ["request_id_var", "RequestIdFilter", "EscapingFormatter", "log_safe", "Metrics", "RequestMiddleware",
           "LOG_FORMAT"]

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
access_log = logging.getLogger("redline.access")
log = logging.getLogger(__name__)
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


LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """The server's Prometheus metrics, in their own registry (several apps may live in one process)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Histogram("redline_http_request_duration_seconds", "HTTP request latency by route.",
                                  ["method", "route", "status"], registry=r, buckets=LATENCY_BUCKETS)
        self.generate_stage = Histogram("redline_generate_stage_seconds",
                                        "Time per stage of a generation (embed, retrieve, aggregate, generate, store).",
                                        ["stage"], registry=r, buckets=LATENCY_BUCKETS)
        self.generation = Histogram("redline_generation_seconds", "Whole agent.generate call.", registry=r,
                                    buckets=LATENCY_BUCKETS)
        self.learning = Histogram("redline_learning_seconds", "One background learning step (process_edit).",
                                  ["outcome"], registry=r, buckets=LATENCY_BUCKETS)
        self.edits = Counter("redline_edits_total", "Edits received.", ["outcome"], registry=r)
        self.tokens = Counter("redline_tokens_total", "Generator tokens spent.", ["kind", "source"], registry=r)
        self.queue_depth = Gauge("redline_learning_queue_depth", "Learning jobs pending or running.", registry=r)
        self.retraining = Gauge("redline_reward_retraining", "1 while the retrainer runs maintenance (a reward "
                                "retrain when one is due), else 0.", registry=r)
        self.retrain = Histogram("redline_reward_retrain_seconds", "One retraining of the reward heads (background).",
                                 registry=r, buckets=LATENCY_BUCKETS)

    def observe_generation(self, result) -> None:
        for stage, ms in result.timings_ms.items():
            self.generate_stage.labels(stage.removesuffix("_ms")).observe(ms / 1000)
        self.generation.observe(sum(result.timings_ms.values()) / 1000)
        self.tokens.labels("prompt", "generate").inc(result.tokens_in)
        self.tokens.labels("completion", "generate").inc(result.tokens_out)

    def observe_retrain(self, seconds: float) -> None:
        self.retrain.observe(seconds)

    def observe_learning(self, seconds: float, outcome: str, result=None) -> None:
        self.learning.labels(outcome).observe(seconds)
        if result is not None:
            self.tokens.labels("prompt", "learn").inc(result.tokens_in)
            self.tokens.labels("completion", "learn").inc(result.tokens_out)


class _TooLarge(Exception):
    pass


class RequestMiddleware:
    """Gives every request an id (``X-Request-ID``, taken from the client when sane), refuses bodies over
    ``max_body_bytes`` with 413, writes one access log line, records latency by route template, and answers
    an unexpected exception itself: a 500 with the usual error body and the request id, on a connection that
    stays open (it wraps FastAPI's handlers, so no error can leave without the id)."""

    def __init__(self, app, *, max_body_bytes: int, metrics: Metrics,
                 unexpected: Callable[[Request], Response] | None = None):
        self.app, self.max_body, self.metrics, self.unexpected = app, max_body_bytes, metrics, unexpected

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        start = time.perf_counter()
        state = {"status": 500, "started": False}
        # As the client sent it (still percent-encoded): the decoded path may hold any character.
        path = (scope.get("raw_path") or scope.get("path", "").encode()).decode("latin-1")

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                message = {**message, "headers": [*message.get("headers", ()), (b"x-request-id", rid.encode())]}
            await send(message)

        async def reply(status: int, message: str, code: str):
            body = json.dumps(error_body(status, message, code)).encode()
            await send_with_id({"type": "http.response.start", "status": status,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
            await send_with_id({"type": "http.response.body", "body": body})

        try:
            length = headers.get(b"content-length")
            too_large = f"the request body is larger than {self.max_body} bytes"
            if length is not None:
                if not length.isdigit():
                    return await reply(400, "invalid Content-Length", "bad_request")
                if int(length) > self.max_body:
                    return await reply(413, too_large, "request_too_large")
                downstream_receive = receive
            else:  # chunked or no body: read it here (bounded) and replay it
                chunks, size, more = [], 0, True
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        break
                    chunks.append(message.get("body", b""))
                    size += len(chunks[-1])
                    if size > self.max_body:
                        return await reply(413, too_large, "request_too_large")
                    more = message.get("more_body", False)
                body, replayed = b"".join(chunks), False

                async def downstream_receive():
                    nonlocal replayed
                    if not replayed:
                        replayed = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

            await self.app(scope, downstream_receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], path)
            if state["started"]:  # a stream broke off: nothing more can be said on this response
                raise
            await self._unexpected(scope, send_with_id, reply)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(state["status"])).observe(elapsed)
            access_log.info("%s %s %d %.1fms %s", scope["method"], path, state["status"], elapsed * 1000,
                            headers.get(b"user-agent", b"-").decode("latin-1"))
            request_id_var.reset(token)

    async def _unexpected(self, scope, send, reply) -> None:
        """The 500: as the app renders it (a page under /ui), else, or if rendering fails too, the error body."""
        if self.unexpected is not None:
            try:
                response = self.unexpected(Request(scope))
            except Exception:
                log.exception("rendering the answer to an unhandled error failed")
            else:
                async def no_body():
                    return {"type": "http.request", "body": b"", "more_body": False}

                return await response(scope, no_body, send)
        await reply(500, "internal error", "internal_error")
