"""Exceptions of the agent package. Edges (CLI, API) turn them into one-line messages / 4xx-5xx."""


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


class EditConflict(AgentError):
    """A different edited text was already accepted for this interaction."""

    status = 409
    code = "conflict"


class GeneratorUnavailable(AgentError):
    """The generator back-end is down, unreachable, or failed; retrying later may work."""

    status = 503
    code = "generator_unavailable"
