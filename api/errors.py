"""One error body for the whole API, OpenAI style: ``{"error": {"message", "type", "code"}}``.

Every exception that reaches the app boundary is rendered here: agent errors get the status and code of their
class in ``AGENT_ERRORS`` (the agent knows nothing of HTTP); request validation becomes 400 (unparseable body) or
422 (wrong fields); anything unexpected is rendered as a 500 without internals by the function
``install_error_handlers`` returns, which ``RequestMiddleware`` calls (it sits outside these handlers, so the answer
carries the request id). Under the inspector's pages (``/ui``) the same status and message come as an HTML page
(``page_error``).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Callable, Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

import redline.agent as agent
from redline.agent import AgentError, EmbeddingUnavailable

__all__ = ["ApiError", "AGENT_ERRORS", "agent_status", "agent_error_body", "error_body", "error_response",
           "install_error_handlers"]
log = logging.getLogger(__name__)

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
         415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
         503: "service_unavailable_error"}
CODES = {400: "bad_request", 401: "invalid_api_key", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "request_too_large", 415: "unsupported_media_type", 422: "invalid_request",
         429: "rate_limited", 503: "unavailable"}


# Each agent error's HTTP status and code; a subclass answers as its nearest listed ancestor.
AGENT_ERRORS: dict[type[AgentError], tuple[int, str]] = {
    AgentError: (400, "bad_request"),
    agent.InvalidInput: (400, "invalid_input"),
    agent.UnknownInteraction: (404, "not_found"),
    agent.UnknownUser: (404, "not_found"),
    agent.UnknownPreference: (404, "not_found"),
    agent.UnknownRule: (404, "not_found"),
    agent.UnknownApiKey: (404, "not_found"),
    agent.InvalidRule: (422, "invalid_rule"),
    agent.RuleConflict: (409, "conflict"),
    agent.EditConflict: (409, "conflict"),
    agent.GeneratorUnavailable: (503, "generator_unavailable"),
    agent.EmbeddingUnavailable: (503, "embedder_unavailable"),
}


def agent_status(exc: AgentError) -> tuple[int, str]:
    """The HTTP status and error code an agent error answers with."""
    for cls in type(exc).__mro__:
        if cls in AGENT_ERRORS:
            return AGENT_ERRORS[cls]
    return AGENT_ERRORS[AgentError]


class ApiError(Exception):
    """An error raised by the API layer itself (auth, limits)."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code or CODES.get(status), headers


def error_body(status: int, message: str, code: str | None = None) -> dict:
    # A message may quote the request; whatever it quotes, the body must encode.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return {"error": {"message": message, "type": TYPES.get(status, "server_error" if status >= 500 else
                                                               "invalid_request_error"),
                      "code": code or CODES.get(status, "internal_error")}}


def agent_error_body(exc: AgentError) -> dict:
    """The error body of an agent error (a stream's last event, once its status line is sent)."""
    status, code = agent_status(exc)
    return error_body(status, str(exc), code)


def error_response(status: int, message: str, code: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, code), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "the request body is not valid JSON", "invalid_json"
    # The most telling error first: a string no one could encode, whichever union branch reported it.
    first = next((e for e in errors if e.get("type") == "lone_surrogate"), errors[0] if errors else {})
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    msg = first.get("msg", "invalid request")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, f"{loc}: {msg}{more}", "invalid_request"


def _routes(app: FastAPI) -> Iterable:
    try:  # FastAPI 0.16x keeps included routers as such in app.routes
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older: app.routes is already the flat list
        return app.routes
    return iter_route_contexts(app.routes)


@functools.lru_cache(maxsize=256)
def _path_regex(path: str) -> re.Pattern:
    return compile_path(path)[0]


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path, and OPTIONS (answered for every path). Starlette's own
    ``Allow`` names only the first route whose path matches (``PATCH`` where ``DELETE`` shares the path)."""
    methods = {"OPTIONS"}
    for route in _routes(request.app):
        path, route_methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path and route_methods and _path_regex(path).match(request.url.path):
            methods |= set(route_methods)
    return sorted(methods)


PageError = Callable[[Request, int, str, dict | None], Response]


def install_error_handlers(app: FastAPI, *, retry_after: int,
                           page_error: PageError | None = None) -> Callable[[Request], Response]:
    """One error body for every route; ``page_error(request, status, message, headers)`` renders the errors of
    the pages under ``/ui`` instead. Returns the renderer of unexpected errors, for ``RequestMiddleware``."""

    def unavailable_headers() -> dict:
        return {"Retry-After": str(retry_after)}

    def respond(request: Request, status: int, message: str, code: str | None = None,
                headers: dict | None = None) -> Response:
        if page_error is not None and (request.url.path == "/ui" or request.url.path.startswith("/ui/")):
            return page_error(request, status, message, headers)
        return error_response(status, message, code, headers)

    @app.exception_handler(AgentError)
    async def agent_error(request: Request, exc: AgentError):
        status, code = agent_status(exc)
        headers = unavailable_headers() if status == 503 else None
        if status >= 500:
            log.warning("%s: %s", type(exc).__name__, exc)
        # the embedder's failure names paths on this machine: logged above, not sent
        message = "the embedding model is unavailable" if isinstance(exc, EmbeddingUnavailable) else str(exc)
        return respond(request, status, message, code, headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return respond(request, exc.status, exc.message, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        status, message, code = _validation_message(exc)
        return respond(request, status, message, code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 405:
            allow = {"Allow": ", ".join(allowed_methods(request))}
            if request.method == "OPTIONS":  # what the path supports is the answer, not an error
                return Response(status_code=204, headers=allow)
            return respond(request, 405, f"{request.method} is not allowed on {request.url.path}; allowed: "
                                         f"{allow['Allow']}", None, allow)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route for {request.method} {request.url.path}"
        elif exc.status_code == 400 and "parsing the body" in message:
            message, code = "the request body is not valid UTF-8 JSON", "invalid_json"
            return respond(request, 400, message, code)
        return respond(request, exc.status_code, message, None, getattr(exc, "headers", None))

    def unexpected(request: Request) -> Response:
        """The answer to an exception nothing foresaw (logged by the caller, ``RequestMiddleware``)."""
        return respond(request, 500, "internal error", "internal_error")

    return unexpected
