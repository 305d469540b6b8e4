"""Shared route helpers: the error responses each route documents in the OpenAPI schema."""

from ..schemas import ErrorResponse

__all__ = ["errors"]


def errors(*statuses: int) -> dict:
    """OpenAPI ``responses=`` entries for the given error statuses (all share one body)."""
    return {s: {"model": ErrorResponse} for s in (400, 401, 413, 422, *statuses)}
