"""What every body of the API shares: the task and strategy names, the string rule (no lone surrogate, no control
character, a text not blank) stated in the schema, exact integers, ``RequestBody`` (the base of every request body),
the error body, and ``state_server_limits`` (the server's limits written into the schema it serves)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from redline.agent.types import STRATEGIES, TASKS, USER_PATTERN

Task = Literal[TASKS]  # OpenAPI lists the values; anything else is a 422 before the agent is called
Strategy = Literal[STRATEGIES]


def reject_lone_surrogates(value: Any) -> Any:
    """``value`` unchanged when every string in it (at any depth, dict keys included) encodes as UTF-8.

    JSON may spell a lone surrogate (``"\\ud800"``) that Python decodes into a ``str`` no response, log line or
    SQLite text can encode; such a value raises the ``lone_surrogate`` validation error (a 422 that names the
    field). Iterative, so a deeply nested unknown field cannot exhaust the stack.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise PydanticCustomError("lone_surrogate", "text must be valid UTF-8 (no lone surrogates)") from None
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return value


Encodable = Annotated[Any, AfterValidator(reject_lone_surrogates)]

# What the server enforces on strings, stated in the OpenAPI schema (the same patterns in ECMA-262 and Python
# regex). Every string of a body: no control character but tab, LF, VT, FF, CR (``api.bodies``, a 400). A text
# (context, edit, preference): that, and at least one character that is not whitespace (the agent's "is empty",
# a 400), and at most REDLINE_MAX_TEXT_CHARS characters (``state_server_limits`` writes the number in). The
# server keeps its 400s, which name the field, character and position, rather than pydantic's 422 "should match
# pattern": the schema says what is refused, the answer says where.
_ALLOWED = r"[^\x00-\x08\x0e-\x1f\x7f]"
_WHITESPACE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # str.isspace()
PLAIN_PATTERN = f"^{_ALLOWED}*$"
TEXT_PATTERN = f"^{_ALLOWED}*[^\\x00-\\x08\\x0e-\\x1f\\x7f{_WHITESPACE}]{_ALLOWED}*$"
_LIMIT = "x-redline-limit"  # replaced by the server's setting in the schema it serves


def _integral(value: Any) -> Any:
    """A JSON number with no fraction (``11.0``) as the integer it is: JSON Schema's ``integer`` includes it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


PlainStr = Annotated[str, WithJsonSchema({"type": "string", "pattern": PLAIN_PATTERN})]
Text = Annotated[str, WithJsonSchema({"type": "string", "minLength": 1, "pattern": TEXT_PATTERN,
                                      _LIMIT: {"maxLength": "max_text_chars"}})]
# The largest integer every JSON reader holds exactly (an IEEE 754 double, RFC 8259 §6): seeds and ids stay within
# it, so a client and a schema validator that read numbers as doubles agree with the server on what is in range.
MAX_SAFE_INTEGER = 2**53 - 1


def integer(ge: int, le: int, **schema: Any) -> Any:
    """An integer in [ge, le] that also takes its JSON spelling with a zero fraction (never a boolean or a string,
    in lax models too), with exact bounds in the schema (pydantic's own writes them as floats)."""
    return Annotated[int, Field(ge=ge, le=le, strict=True), BeforeValidator(_integral),
                     WithJsonSchema({"type": "integer", "minimum": ge, "maximum": le, **schema})]


Tokens = integer(1, 8192, **{_LIMIT: {"maximum": "max_request_tokens"}})
Seed = integer(0, MAX_SAFE_INTEGER)
# Unknown fields the chat route ignores: any JSON whose strings (and keys) follow the rule above.
ANY_JSON = {"$ref": "#/components/schemas/PlainJson"}
PLAIN_JSON = {"anyOf": [{"type": "null"}, {"type": "boolean"}, {"type": "number"},
                        {"type": "string", "pattern": PLAIN_PATTERN}, {"type": "array", "items": ANY_JSON},
                        {"type": "object", "additionalProperties": ANY_JSON,
                         "propertyNames": {"pattern": PLAIN_PATTERN}}],
              "description": "Any JSON value whose strings hold no control character but tab, LF, VT, FF, CR."}


def _open_object(schema: dict) -> None:
    """The schema of a model that accepts unknown fields: they may be any JSON that follows the string rule."""
    schema["additionalProperties"] = ANY_JSON
    schema["propertyNames"] = {"pattern": PLAIN_PATTERN}


def state_server_limits(openapi: dict, settings) -> dict:
    """``openapi`` (FastAPI's schema, changed in place) with this server's limits written in where the models
    mark them (the longest text, the largest ``max_tokens``), and ``PlainJson`` defined."""
    pending = [openapi]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            for key, setting in node.pop(_LIMIT, {}).items():
                node[key] = getattr(settings, setting)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    openapi.setdefault("components", {}).setdefault("schemas", {})["PlainJson"] = PLAIN_JSON
    return openapi


class RequestBody(BaseModel):
    """The base of every request body and of each part of one: every field, and every unknown field a model
    allows, is checked by ``reject_lone_surrogates`` while the body is validated, so a string the server
    could not encode is a 422 before any route does work (not a 500 after it)."""

    __pydantic_extra__: dict[str, Encodable] = Field(init=False)

    @field_validator("*")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        return reject_lone_surrogates(value)


UserId = Annotated[str, Field(pattern=USER_PATTERN, description="User id within the tenant: 1-128 of "
                                                               "letters, digits and . _ @ : + -")]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail

