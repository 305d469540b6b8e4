"""One SQLite connection shared by threads: a lock, nested write transactions, rows as dicts; and the
encodings of values the tables hold (timestamps, float32 vectors)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import sqlite_utils

__all__ = ["SQLite", "now_iso", "vector_to_blob", "blob_to_vector", "features_to_blob", "blobs_to_features"]
log = logging.getLogger(__name__)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


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


class SQLite:
    """The connection (WAL, ``synchronous=FULL``, foreign keys) behind ``db``, a ``sqlite_utils.Database``."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 30_000):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                               timeout=busy_timeout_ms / 1000)
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self._closed = False
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged edit must survive power loss, not only a process crash.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros, not left in free pages: a hard delete must leave no text on
        # disk. Set here, not left to the SQLite build's default (SQLITE_SECURE_DELETE is off in most builds).
        self.db.execute("PRAGMA secure_delete=ON")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested calls join the outer one."""
        with self._lock:
            conn = self.db.conn
            if conn.in_transaction:
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[dict]:
        with self._lock:
            cur = self.db.conn.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

    def tuples(self, sql: str, params: tuple | list | dict = ()) -> list[tuple]:
        """Rows as plain tuples (for bulk numeric reads, where a dict per row would cost more than the row)."""
        with self._lock:
            return self.db.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | dict = ()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it to zero bytes: the WAL keeps every page a
        transaction wrote (old texts included) until a checkpoint, however secure_delete zeroed the pages."""
        if self.path == ":memory:":
            return
        with self._lock:
            busy, _, _ = self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:  # another process is reading; its next checkpoint (at the latest at close) finishes the job
            log.warning("WAL checkpoint blocked by a reader of %s; the WAL is truncated at the next one", self.path)

    def close(self) -> None:
        """Checkpoint and close (the last connection to close also removes the WAL file)."""
        with self._lock:
            if self._closed:
                return
            self.checkpoint()
            self.db.conn.close()
            self._closed = True
