"""Exceptions raised by the store."""


class StoreError(Exception):
    """Base class for errors in ``store``."""


class NotFound(StoreError):
    """A row that was asked for by id does not exist (for this tenant)."""


class Conflict(StoreError):
    """A write contradicts what is already stored (e.g. a second, different edit)."""


# PostgreSQL's deadlock_detected and serialization_failure: the server rolled the transaction back and says that
# running it again may succeed. (SQLite's writer waits for its lock up to the busy timeout instead.)
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def lost_a_race(exc: BaseException) -> bool:
    """True when ``exc`` ended a write transaction only because a concurrent one won (a deadlock or a serialization
    failure): nothing was written, and the same write may simply be made again.

    >>> class Deadlock(Exception):
    ...     sqlstate = "40P01"
    >>> lost_a_race(Deadlock()), lost_a_race(ValueError("40P01"))
    (True, False)
    """
    return getattr(exc, "sqlstate", None) in _RETRYABLE_SQLSTATES
