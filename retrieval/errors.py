"""Exceptions raised by the retrieval package (embedder, index)."""


class RetrievalError(Exception):
    """Base class for errors in `retrieval`."""


class EmbedderUnavailable(RetrievalError):
    """The embedding model could not be found or loaded."""
