"""Request ids, access logging, body limits, the last-resort 500 and Prometheus metrics (one pure ASGI
middleware). The log format, which escapes what clients control (``log_safe``), is every process's
(``redline.runtime.logs``); its names are re-exported here."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from redline.runtime.logs import LOG_FORMAT, EscapingFormatter, RequestIdFilter, log_safe, request_id_var
from redline.runtime.metrics import LATENCY_BUCKETS, multiprocess_dir

from .errors import error_body

__all__ = ["request_id_var", "RequestIdFilter", "EscapingFormatter", "log_safe", "Metrics", "RequestMiddleware",
           "LOG_FORMAT"]
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
access_log = logging.getLogger("redline.access")
log = logging.getLogger(__name__)

class _StoreGauges:
    """Gauges read from the store when scraped, so every API process reports the same values: the learning
    queue's depth, the learning jobs parked and the learners alive (their leases)."""

    def __init__(self, queue_depth: Callable[[], int], learners: Callable[[], int], parked: Callable[[], int]):
        self.queue_depth, self.learners, self.parked = queue_depth, learners, parked

    def collect(self):
        yield GaugeMetricFamily("redline_learning_queue_depth", "Learning jobs pending or running (from the store).",
                                value=self.queue_depth())
        yield GaugeMetricFamily("redline_learning_parked_jobs", "Learning jobs parked after failing every attempt, "
                                "waiting for a retry (from the store).", value=self.parked())
        yield GaugeMetricFamily("redline_learners", "Learner processes alive on the store (their leases).",
                                value=self.learners())


class Metrics:
    """The API process's Prometheus metrics, in their own registry (several apps may live in one process).

    Under ``redline serve`` every process writes its metrics into the directory ``PROMETHEUS_MULTIPROC_DIR`` names
    (prometheus_client's multiprocess mode), and ``exposition`` reads them all: the learner's learning and
    retraining metrics (``redline.learner.LearnerMetrics``) and every API process's, from whichever API process
    is scraped. Without it (one process, tests) it is this registry's."""

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
        self.edits = Counter("redline_edits_total", "Edits received.", ["outcome"], registry=r)
        self.tokens = Counter("redline_tokens_total", "Generator tokens spent.", ["kind", "source"], registry=r)
        self._store_gauges: _StoreGauges | None = None

    def read_store(self, queue_depth: Callable[[], int], learners: Callable[[], int],
                   parked: Callable[[], int] = lambda: 0) -> None:
        """Report the store's gauges (queue depth, learners alive, jobs parked) from these callables."""
        if self._store_gauges is None:
            self._store_gauges = _StoreGauges(queue_depth, learners, parked)
            self.registry.register(self._store_gauges)
        else:
            gauges = self._store_gauges
            gauges.queue_depth, gauges.learners, gauges.parked = queue_depth, learners, parked

    def exposition(self) -> bytes:
        """The Prometheus text: every process's metrics in multiprocess mode, else this registry's."""
        folder = multiprocess_dir()
        if folder is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=folder)
        if self._store_gauges is not None:
            registry.register(self._store_gauges)
        return generate_latest(registry)

    def observe_generation(self, result) -> None:
        for stage, ms in result.timings_ms.items():
            self.generate_stage.labels(stage.removesuffix("_ms")).observe(ms / 1000)
        self.generation.observe(sum(result.timings_ms.values()) / 1000)
        self.tokens.labels("prompt", "generate").inc(result.tokens_in)
        self.tokens.labels("completion", "generate").inc(result.tokens_out)


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
