"""Shared route helpers: the error responses each route documents in the OpenAPI schema, and the limit on
``max_tokens`` that both generation routes apply."""

from redline.agent import Settings

from ..errors import ApiError
from ..schemas import ErrorResponse

__all__ = ["errors", "check_max_tokens"]


def errors(*statuses: int) -> dict:
    """OpenAPI ``responses=`` entries for the given error statuses (all share one body)."""
    return {s: {"model": ErrorResponse} for s in (400, 401, 413, 422, *statuses)}


def check_max_tokens(max_tokens: int | None, settings: Settings) -> int | None:
    """``max_tokens`` when this server allows it (``REDLINE_MAX_REQUEST_TOKENS``), else a 400."""
    if max_tokens is not None and max_tokens > settings.max_request_tokens:
        raise ApiError(400, f"max_tokens is {max_tokens}; this server allows at most "
                            f"{settings.max_request_tokens}", "invalid_input")
    return max_tokens
