"""Exceptions of the agent package. Edges (CLI, API) turn them into one-line messages / 4xx-5xx.

Errors of the packages below (store, retrieval) are translated here at the agent's boundary, so an edge
only ever handles ``AgentError``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from redline.retrieval import EmbedderUnavailable


class AgentError(Exception):
    """Base class; ``status`` is the HTTP status an edge should answer with."""

    status = 400
    code = "bad_request"


class InvalidInput(AgentError):
    """Text that is empty, too long, or otherwise unusable."""

    status = 400
    code = "invalid_input"


class UnknownInteraction(AgentError):
    status = 404
    code = "not_found"


class UnknownUser(AgentError):
    status = 404
    code = "not_found"


class UnknownPreference(AgentError):
    status = 404
    code = "not_found"


class UnknownRule(AgentError):
    """A rule id the user does not have (unknown, or another user's or tenant's)."""

    status = 404
    code = "not_found"


class InvalidRule(AgentError):
    """A change that would make a rule invalid (empty or overlong text, a limit that is not a number, ...)."""

    status = 422
    code = "invalid_rule"


class RuleConflict(AgentError):
    """The change would turn a rule into another rule the user already has."""

    status = 409
    code = "conflict"


class UnknownApiKey(AgentError):
    status = 404
    code = "not_found"


class EditConflict(AgentError):
    """A different edited text was already accepted for this interaction."""

    status = 409
    code = "conflict"


class GeneratorUnavailable(AgentError):
    """The generator back-end is down, unreachable, or failed; retrying later may work. ``retryable`` is False
    when a generator server answered and refused the request (a 4xx): the same request again would be refused."""

    status = 503
    code = "generator_unavailable"

    def __init__(self, message: str = "", *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class EmbeddingUnavailable(AgentError):
    """The embedding model could not be found or loaded; the message says why."""

    status = 503
    code = "embedder_unavailable"


@contextmanager
def embedding_errors() -> Iterator[None]:
    """Raise the embedder's failure to load as ``EmbeddingUnavailable``."""
    try:
        yield
    except EmbedderUnavailable as exc:
        raise EmbeddingUnavailable(str(exc)) from exc
