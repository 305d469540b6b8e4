"""PostgreSQL for threads, with the surface of ``_sqlite.SQLite``: a psycopg 3 connection pool; a write transaction
holds one pooled connection on its thread (nested calls join it, reads inside see its rows); reads outside take any
pooled connection (autocommit); rows as dicts. SQL arrives in the store's shared dialect and is translated once
(``Dialect.sql``). LISTEN/NOTIFY on a connection of its own wakes waiting learners."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ._dialect import POSTGRES

__all__ = ["Postgres", "redact"]
log = logging.getLogger(__name__)


def redact(url: str) -> str:
    """``url`` without its password (for logs and errors)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://…"
    host, port = info.get("host", ""), info.get("port", 5432)
    return f"postgresql://{info.get('user', '')}@{host}:{port}/{info.get('dbname', '')}"


class _Conn:
    """A connection in a write transaction, with ``sqlite3.Connection``'s ``execute``/``executemany``: the SQL is
    translated, the cursor (tuples; ``rowcount``, ``fetchone``, iteration) returned."""

    def __init__(self, conn: psycopg.Connection):
        self.raw = conn

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor:
        return self.raw.execute(POSTGRES.sql(sql), params)

    def executemany(self, sql: str, rows: list) -> psycopg.Cursor:
        cur = self.raw.cursor()
        if rows:
            cur.executemany(POSTGRES.sql(sql), rows)
        return cur


class Postgres:
    dialect = POSTGRES

    def __init__(self, url: str, *, pool_size: int = 8, timeout: float = 30.0):
        self.url, self.path = url, redact(url)
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, timeout=timeout, open=False,
                                    kwargs={"autocommit": True}, name="redline")
        self._pool.open(wait=True, timeout=timeout)
        self._local = threading.local()  # per thread: the connection of its transaction or snapshot
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._listen_thread: threading.Thread | None = None
        self._listen_conn: psycopg.Connection | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()

    # -- transactions ---------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[_Conn]:
        """One write transaction; nested calls join the outer one."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            if getattr(self._local, "read_only", False):
                raise RuntimeError("a write inside a read snapshot")
            yield _Conn(held)
            return
        with self._pool.connection() as conn:
            with conn.transaction():
                self._local.conn = conn
                try:
                    yield _Conn(conn)
                finally:
                    self._local.conn = None

    def grouped(self, write: Callable[[_Conn], Any]) -> Any:
        """``write(conn)`` in a transaction of its own (PostgreSQL groups concurrent commits in its WAL itself)."""
        with self.transaction() as conn:
            return write(conn)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """``query``/``one`` calls inside see one state of the database (a repeatable-read, read-only transaction)."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self._pool.connection() as conn:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                self._local.conn, self._local.read_only = conn, True
                try:
                    yield
                finally:
                    self._local.conn, self._local.read_only = None, False

    def lock_users(self, conn: _Conn, user_ids: list[int], *, delete: bool = False) -> bool:
        """Lock these users' rows until the transaction ends, in id order (two writers that lock several users
        never wait for each other in a circle). ``NO KEY UPDATE``: rows that only refer to a user (an interaction
        being added) do not wait for it; ``delete``: they do (a hard delete), and fail once it committed."""
        ids = sorted(set(user_ids))
        if ids:
            mode = "UPDATE" if delete else "NO KEY UPDATE"
            conn.raw.execute(f"SELECT id FROM users WHERE id = ANY(%s) ORDER BY id FOR {mode}", (ids,))
        return True  # True: the caller reads again what it read before (another writer may have changed it)

    # -- reads ----------------------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Connection]:
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        with self._pool.connection() as conn:
            yield conn

    def query(self, sql: str, params: tuple | dict = ()) -> list[dict]:
        """Rows as dicts: read on a pooled connection, or on this thread's transaction's."""
        with self._reading() as conn:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(POSTGRES.sql(sql), params)
                return cur.fetchall()

    def tuples(self, sql: str, params: tuple | list | dict = ()) -> list[tuple]:
        with self._reading() as conn:
            return conn.execute(POSTGRES.sql(sql), params).fetchall()

    def one(self, sql: str, params: tuple | dict = ()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL's deleted rows leave with (auto)vacuum, its WAL is recycled by the server."""

    # -- notifications --------------------------------------------------------------------------------

    def notify(self, conn: _Conn, channel: str) -> None:
        """Notify ``channel`` when the caller's transaction commits."""
        conn.raw.execute(f"NOTIFY {channel}")

    def listen(self, channel: str, callback: Callable[[], None]) -> bool:
        """Call ``callback`` (on a thread of the store's) whenever ``channel`` is notified; True."""
        with self._lock:
            self._listeners.setdefault(channel, []).append(callback)
            if self._listen_thread is None:
                self._listen_thread = threading.Thread(target=self._listen_loop, name="redline-pg-listen",
                                                       daemon=True)
                self._listen_thread.start()
        return True

    def _listen_loop(self) -> None:
        while not self._closed.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    self._listen_conn = conn
                    for channel in list(self._listeners):
                        conn.execute(f"LISTEN {channel}")
                    for callback in [c for cs in self._listeners.values() for c in cs]:
                        callback()  # anything notified while not listening is looked at once
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=1.0):
                            for callback in self._listeners.get(note.channel, ()):
                                callback()
            except psycopg.Error as exc:
                if self._closed.is_set():
                    return
                log.warning("listening on %s failed (%s); polling until it is back", self.path, exc)
                self._closed.wait(1.0)
            finally:
                self._listen_conn = None

    def close(self) -> None:
        self._closed.set()
        if self._listen_thread is not None:
            self._listen_thread.join(timeout=5)
        self._pool.close()
