"""``SQLStore``: all persistent state of redline as one body of SQL over an adapter (``_sqlite.SQLite`` or
``_postgres.Postgres``, each with its ``Dialect``), and ``SQLiteStore``, the store in one SQLite file.
``PostgresStore`` (``store.postgres``) only opens its adapter and migrates.

The rows live in modules named for what they hold: ``users``, ``interactions`` (and edits, and the learning step),
``preferences`` (and the aggregation cache), ``pairs`` (and their features, and the users' reward states); jobs,
keys, rules, checkpoints, leases and health are collaborators with their own modules, attributes of the store.
Writes that belong together happen in one transaction, so a crash leaves either all of a learning step or none of
it; on PostgreSQL a write that changes a user's state first locks the user's row (several users: in id order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._sqlite import SQLite
from .checkpoints import Checkpoints
from .health import Health
from .interactions import InteractionRows
from .jobs import Jobs
from .keys import ApiKeys, Sessions
from .leases import Leases
from .pairs import PairRows
from .preferences import PreferenceRows
from .rules import Rules
from .schema import migrate, schema_version
from .users import UserRows

__all__ = ["SQLStore", "SQLiteStore"]


class SQLStore(UserRows, InteractionRows, PreferenceRows, PairRows):
    """All persistent state of redline, as SQL over ``sql`` (an adapter: ``SQLite`` or ``Postgres``). Build one with
    ``open_store`` (or ``SQLiteStore``/``PostgresStore``). Its parts share only the adapter (``_sql``) and the
    collaborators below."""

    def __init__(self, sql: Any):
        self._sql = sql
        self.path = sql.path
        self.jobs = Jobs(sql)
        self.keys = ApiKeys(sql)
        self.sessions = Sessions(sql)
        self.rules = Rules(sql)
        self.checkpoints = Checkpoints(sql)
        self.leases = Leases(sql)
        self.health = Health(sql)

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._sql.dialect.name

    @property
    def schema_version(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Close the database (SQLite: merge the WAL into the file first); call it at shutdown."""
        self._sql.close()

    def ping(self) -> bool:
        return self._sql.one("SELECT 1 AS ok")["ok"] == 1


class SQLiteStore(SQLStore):
    """The store in one SQLite file (``":memory:"`` for tests): the embedded default.

    >>> store = SQLiteStore(":memory:")
    >>> uid = store.user_id("default", "alice")
    """

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 30_000):
        sql = SQLite(path, busy_timeout_ms=busy_timeout_ms)
        migrate(sql)
        super().__init__(sql)

    @property
    def schema_version(self) -> int:
        return schema_version(self._sql)
