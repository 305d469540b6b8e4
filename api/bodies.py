"""Request bodies as the API reads them: JSON in UTF-8, and when a body is anything else the answer says what.

Every route that takes a JSON body is a ``JsonRoute``. Before FastAPI validates the body against the route's
model, ``read_json`` checks the bytes:

- the ``Content-Type`` is JSON (``application/json`` or ``application/*+json``, UTF-8 if a charset is named):
  else ``415`` naming the type expected (a form, ``text/plain`` or XML would otherwise meet the model as a string
  and fail as "not a valid dictionary");
- the bytes are UTF-8 without a byte order mark (RFC 8259 §8.1: JSON between systems is UTF-8, and a sender must
  not add a BOM): a UTF-16/UTF-32 body, a BOM or invalid UTF-8 is a ``400`` that says which;
- the JSON parses (no ``NaN``/``Infinity``, which JSON does not have) and nests at most ``MAX_DEPTH`` arrays and
  objects (``400`` "nested too deeply", where the parser would run out of stack);
- no string in it, value or key, at any depth, holds a control character other than tab, newline, carriage return,
  vertical tab and form feed: the rule the agent applies to contexts and edits (``check_control_chars``), here for
  every field, the ones a route ignores included (a model name, a message's ``name``, ``metadata``), so such a
  character is never stored, echoed back or logged. ``400`` naming the field, the character and its position.
"""

from __future__ import annotations

import email.message
import json
from typing import Any, Callable, Coroutine

from fastapi import Request, Response
from fastapi.routing import APIRoute

from redline.agent.types import check_control_chars

from .errors import ApiError

__all__ = ["JsonRoute", "read_json", "document_body_errors", "MAX_DEPTH", "JSON_CONTENT_TYPE"]

MAX_DEPTH = 64
JSON_CONTENT_TYPE = "application/json"
_BOMS = {b"\xef\xbb\xbf": "a UTF-8 byte order mark", b"\xff\xfe": "a UTF-16 byte order mark",
         b"\xfe\xff": "a UTF-16 byte order mark"}


def _not_json_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _check_content_type(content_type: str | None) -> None:
    if not content_type:
        raise ApiError(415, f"the request has no Content-Type: send the body as JSON with "
                            f"'Content-Type: {JSON_CONTENT_TYPE}'", "unsupported_media_type")
    header = email.message.Message()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    if header.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise ApiError(415, f"the request body is {header.get_content_type()}; send JSON with "
                            f"'Content-Type: {JSON_CONTENT_TYPE}'", "unsupported_media_type")
    charset = header.get_param("charset")
    if isinstance(charset, str) and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise ApiError(415, f"the request body is declared charset={charset}; send UTF-8 JSON "
                            f"('Content-Type: {JSON_CONTENT_TYPE}')", "unsupported_media_type")


def _decode(body: bytes) -> str:
    for bom, name in _BOMS.items():
        if body.startswith(bom):
            raise ApiError(400, f"the request body starts with {name}; send UTF-8 JSON without one", "invalid_json")
    if b"\x00" in body[:4]:  # RFC 4627 §3: JSON in UTF-16 or UTF-32 has a NUL in its first four bytes
        raise ApiError(400, "the request body is UTF-16 or UTF-32; send UTF-8 JSON", "invalid_json")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the request body is not valid UTF-8 (byte {exc.start})", "invalid_json") from None


def _too_deep() -> ApiError:
    return ApiError(400, f"the request body is nested too deeply: at most {MAX_DEPTH} levels of arrays and "
                         "objects", "invalid_json")


def _field(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "body"


def _inspect(value: Any) -> None:
    """``_too_deep`` past ``MAX_DEPTH`` levels; the agent's ``InvalidInput`` (``check_control_chars``, a 400) for
    the first string with a control character, named by its path as validation errors name fields
    (``messages.0.name``; a key: "a key in metadata"). Iterative: no body can exhaust the stack here."""
    pending: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, str):
            check_control_chars(item, _field(path))
        elif isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                raise _too_deep()
            if isinstance(item, dict):
                for key, child in item.items():
                    check_control_chars(key, f"a key in {_field(path)}")
                    pending.append((child, (*path, key), depth + 1))
            else:
                pending.extend((child, (*path, i), depth + 1) for i, child in enumerate(item))


def read_json(body: bytes, content_type: str | None) -> Any:
    """The JSON value of a request body, or the ``ApiError`` that says what is wrong with it (see the module)."""
    _check_content_type(content_type)
    text = _decode(body)
    try:
        value = json.loads(text, parse_constant=_not_json_constant)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError:
        raise ApiError(400, "the request body is not valid JSON", "invalid_json") from None
    except ValueError as exc:  # NaN, Infinity
        raise ApiError(400, f"the request body is not valid JSON ({exc})", "invalid_json") from None
    _inspect(value)
    return value


class _JsonRequest(Request):
    """A request whose ``json()`` is ``read_json`` of its body (FastAPI reads the body through it)."""

    async def json(self) -> Any:
        if not hasattr(self, "_read_json"):
            self._read_json = read_json(await self.body(), self.headers.get("content-type"))
        return self._read_json


class JsonRoute(APIRoute):
    """An API route whose JSON body is read by ``read_json`` before anything else looks at it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def handle(request: Request) -> Response:
            request = _JsonRequest(request.scope, request.receive)
            if await request.body():  # an empty body is for the model to name as missing
                await request.json()
            return await handler(request)

        return handle


def document_body_errors(openapi: dict) -> dict:
    """``openapi`` (changed in place) with the ``415`` of ``read_json`` on every operation that takes a body."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation.setdefault("responses", {}).setdefault("415", {
                    "description": "The body is not JSON (Content-Type application/json, UTF-8).",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}})
    return openapi
