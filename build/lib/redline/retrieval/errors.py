"""Exceptions raised by the retrieval package (store, index, embedder)."""


class RetrievalError(Exception):
    """Base class for errors in `retrieval`."""


class NotFound(RetrievalError):
    """A row that was asked for by id does not exist (for this tenant)."""


class Conflict(RetrievalError):
    """A write contradicts what is already stored (e.g. a second, different edit)."""


class EmbedderUnavailable(RetrievalError):
    """The embedding model could not be found or loaded."""
