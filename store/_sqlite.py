"""SQLite for threads: one writer connection behind a lock (nested write transactions, group commit), a read
connection per thread (WAL readers never wait for the writer), rows as dicts; and the encodings of values the
tables hold (timestamps, float32 vectors)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import sqlite_utils

from ._dialect import SQLITE

__all__ = ["SQLite", "now_iso", "vector_to_blob", "blob_to_vector", "features_to_blob", "blobs_to_features"]
log = logging.getLogger(__name__)


def now_iso(offset_seconds: float = 0.0) -> str:
    """The time (UTC, milliseconds) ``offset_seconds`` from now, as text that sorts in time order."""
    return (datetime.now(timezone.utc) + timedelta(seconds=offset_seconds)).isoformat(timespec="milliseconds")


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


def features_to_blob(features: np.ndarray) -> bytes:
    """Reward features keep float64, so a state replayed from stored rows equals the one learned online."""
    return np.ascontiguousarray(features, dtype=np.float64).tobytes()


def blobs_to_features(blobs: list[bytes], dim: int | None = None) -> np.ndarray:
    """Rows of equal-length float64 blobs as one (n, d) array, decoded in one pass."""
    if not blobs:
        return np.zeros((0, dim or 0))
    return np.frombuffer(b"".join(blobs), dtype=np.float64).reshape(len(blobs), -1).copy()


def _rows(cursor: sqlite3.Cursor) -> list[dict]:
    cols = [c[0] for c in cursor.description]
    return [dict(zip(cols, row)) for row in cursor.fetchall()]


@dataclass
class _GroupedWrite:
    write: Callable[[sqlite3.Connection], Any]
    result: Any = None
    error: BaseException | None = None
    done: bool = False


class SQLite:
    """The writer connection (WAL, ``synchronous=FULL``, foreign keys) behind ``db``, a ``sqlite_utils.Database``,
    and one read-only connection per thread for ``query``/``one`` outside a write transaction (an in-memory
    database has only the one connection)."""

    dialect = SQLITE

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 30_000):
        self.path = str(path)
        self._timeout = busy_timeout_ms / 1000
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=self._timeout)
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self._local = threading.local()  # per thread: its read connection, and how deep in a write it is
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._grouped: list[_GroupedWrite] = []
        self._grouped_lock = threading.Lock()
        self._closed = False
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged edit must survive power loss, not only a process crash.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros, not left in free pages: a hard delete must leave no text on
        # disk. Set here, not left to the SQLite build's default (SQLITE_SECURE_DELETE is off in most builds).
        self.db.execute("PRAGMA secure_delete=ON")
        if self.path != ":memory:":  # the writer waits for other processes' writes itself (_begin), in short steps
            self.db.execute("PRAGMA busy_timeout=0")

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """The writer connection, this thread marked as writing (its reads then see its own uncommitted rows)."""
        with self._lock:
            self._local.writing = getattr(self._local, "writing", 0) + 1
            try:
                yield self.db.conn
            finally:
                self._local.writing -= 1

    def _begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``: take the database's write lock, waiting while another process holds it. SQLite's own
        wait sleeps 1, 2, 5, 10, 15, 20, 25 ms... between tries, so a wait behind another process's 5 ms write
        often cost 8-18 ms; this one tries again every 0.2-2 ms (up to the busy timeout)."""
        deadline, pause = time.monotonic() + self._timeout, 0.0002
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 5) & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(2 * pause, 0.002)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested calls join the outer one."""
        with self._writing() as conn:
            if conn.in_transaction:
                yield conn
                return
            self._begin(conn)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def grouped(self, write: Callable[[sqlite3.Connection], Any]) -> Any:
        """Group commit: run ``write(conn)`` in a write transaction shared with the writes other threads queued
        meanwhile, committed (and synced to disk) once for all of them. Returns its result once that commit is
        durable; if ``write`` raises, its own changes are rolled back (a savepoint) and the error is raised here,
        the others' writes stand. Inside a transaction of this thread it simply joins that transaction.

        The thread that takes the writer lock commits everything queued so far; the others find their write
        done when they get the lock, so N waiting writers cost one fsync rather than N.
        """
        if getattr(self._local, "writing", 0):
            with self.transaction() as conn:
                return write(conn)
        item = _GroupedWrite(write)
        with self._grouped_lock:
            self._grouped.append(item)
        with self._writing():
            if not item.done:
                self._commit_grouped()
        if item.error is not None:
            raise item.error
        return item.result

    def _commit_grouped(self) -> None:
        with self._grouped_lock:
            batch, self._grouped = self._grouped, []
        conn = self.db.conn
        try:
            self._begin(conn)
            for item in batch:
                conn.execute("SAVEPOINT grouped_write")
                try:
                    item.result = item.write(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO grouped_write")
                    item.error = exc
                conn.execute("RELEASE grouped_write")
            conn.execute("COMMIT")
        except BaseException as exc:  # nothing of the group is on disk: every writer hears why
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for item in batch:
                item.error = item.error or exc
        finally:
            for item in batch:
                item.done = True

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "reader", None)
        if conn is None:
            with self._readers_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                       timeout=self._timeout)
                conn.execute("PRAGMA query_only=ON")
                self._readers.append(conn)
            self._local.reader = conn
        return conn

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """``query``/``one`` calls inside see one state of the database (one read transaction on this thread's
        reader), so a read made of several queries is never torn by a commit between them (e.g. an edit marked
        learned without the preference its learning stored). Inside this thread's write, or in memory, reads
        are already consistent (they share the writer's lock or transaction)."""
        if self.path == ":memory:":
            with self._lock:
                yield
            return
        if getattr(self._local, "writing", 0) or getattr(self._local, "snapshot", False):
            yield
            return
        conn = self._reader()
        conn.execute("BEGIN")
        self._local.snapshot = True
        try:
            yield
        finally:
            self._local.snapshot = False
            conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[dict]:
        """Rows as dicts: read on this thread's connection, or on the writer's inside this thread's write."""
        if self.path == ":memory:" or getattr(self._local, "writing", 0):
            with self._lock:
                return _rows(self.db.conn.execute(sql, params))
        return _rows(self._reader().execute(sql, params))

    def tuples(self, sql: str, params: tuple | list | dict = ()) -> list[tuple]:
        """Rows as plain tuples (for bulk numeric reads, where a dict per row would cost more than the row); read
        like ``query``, never behind the writer."""
        if self.path == ":memory:" or getattr(self._local, "writing", 0):
            with self._lock:
                return self.db.conn.execute(sql, params).fetchall()
        return self._reader().execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | dict = ()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def lock_users(self, conn: sqlite3.Connection, user_ids: list[int], *, delete: bool = False) -> bool:
        """Lock these users' rows until the transaction ends: nothing to do here, a write transaction holds the one
        write lock of the database (False: nothing was locked, nothing changed meanwhile)."""
        return False

    def notify(self, conn: sqlite3.Connection, channel: str) -> None:
        """Tell other processes something changed: SQLite has no channel (they poll)."""

    def listen(self, channel: str, callback: Callable[[], None]) -> bool:
        """Call ``callback`` when another process notifies ``channel``; False: not possible here (poll instead)."""
        return False

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it to zero bytes: the WAL keeps every page a
        transaction wrote (old texts included) until a checkpoint, however secure_delete zeroed the pages."""
        if self.path == ":memory:":
            return
        with self._lock:  # a checkpoint waits for readers through SQLite's own busy handler
            self.db.conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            try:
                busy, _, _ = self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                self.db.conn.execute("PRAGMA busy_timeout=0")
        if busy:  # another process is reading; its next checkpoint (at the latest at close) finishes the job
            log.warning("WAL checkpoint blocked by a reader of %s; the WAL is truncated at the next one", self.path)

    def close(self) -> None:
        """Close the readers, checkpoint, close the writer (the last connection to close removes the WAL file)."""
        with self._lock, self._readers_lock:
            if self._closed:
                return
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self.checkpoint()
            self.db.conn.close()
            self._closed = True
