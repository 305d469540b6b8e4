"""One SQLite connection shared by threads: a lock, nested write transactions, rows as dicts; and the
encodings of values the tables hold (timestamps, float32 vectors)."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import sqlite_utils

__all__ = ["SQLite", "now_iso", "vector_to_blob", "blob_to_vector"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


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
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged edit must survive power loss, not only a process crash.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")

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

    def one(self, sql: str, params: tuple | dict = ()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()
