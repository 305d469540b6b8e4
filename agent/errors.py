"""Exceptions of the agent package: what went wrong, in the agent's terms. Edges turn them into one-line messages
(CLI) or HTTP statuses (the API's table in ``api/errors.py``); nothing here knows about HTTP.

Errors of the packages below (store, retrieval) are translated here at the agent's boundary, so an edge
only ever handles ``AgentError``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np

from redline.retrieval import EmbedderUnavailable


class AgentError(Exception):
    """Base class of every error an edge may show its caller."""


class InvalidInput(AgentError):
    """Text that is empty, too long, or otherwise unusable."""


class UnknownInteraction(AgentError):
    """No interaction of that id (or not the caller's tenant's)."""


class UnknownUser(AgentError):
    """No user of that name in the tenant."""


class UnknownPreference(AgentError):
    """A preference id the user does not have."""


class UnknownRule(AgentError):
    """A rule id the user does not have (unknown, or another user's or tenant's)."""


class InvalidRule(AgentError):
    """A change that would make a rule invalid (empty or overlong text, a limit that is not a number, ...)."""


class RuleConflict(AgentError):
    """The change would turn a rule into another rule the user already has."""


class UnknownApiKey(AgentError):
    """No API key of that id."""


class EditConflict(AgentError):
    """A different edited text was already accepted for this interaction."""


class GeneratorUnavailable(AgentError):
    """The generator back-end is down, unreachable, or failed; retrying later may work. ``retryable`` is False
    when a generator server answered and refused the request (a 4xx): the same request again would be refused."""

    def __init__(self, message: str = "", *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class EmbeddingUnavailable(AgentError):
    """The embedding model could not be found or loaded; the message says why."""


@contextmanager
def embedding_errors() -> Iterator[None]:
    """Raise the embedder's failure to load as ``EmbeddingUnavailable``."""
    try:
        yield
    except EmbedderUnavailable as exc:
        raise EmbeddingUnavailable(str(exc)) from exc


def encode(embedder, texts: Sequence[str]) -> np.ndarray:
    """``embedder.encode(texts)``, the embedder's failure to load raised as ``EmbeddingUnavailable``."""
    with embedding_errors():
        return embedder.encode(texts)
