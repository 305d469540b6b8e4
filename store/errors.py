"""Exceptions raised by the store."""


class StoreError(Exception):
    """Base class for errors in ``store``."""


class NotFound(StoreError):
    """A row that was asked for by id does not exist (for this tenant)."""


class Conflict(StoreError):
    """A write contradicts what is already stored (e.g. a second, different edit)."""
