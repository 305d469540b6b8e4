"""How the parts redline calls are doing, shared by every process on the store: per part (the generator), when a
call to it last succeeded (``ok_at``) and last failed (``failed_at``, with the ``error``). Each process writes what
its own calls saw (the agent's generator wrapper); any process's ``/ready`` reads the shared row."""

from __future__ import annotations

from ._sqlite import SQLite, now_iso

__all__ = ["Health"]


class Health:
    def __init__(self, sql: SQLite):
        self._sql = sql

    def ok(self, name: str, *, stamp: str | None = None) -> None:
        """A call to ``name`` succeeded (at ``stamp``, default now)."""
        with self._sql.transaction() as conn:
            conn.execute("INSERT INTO health (name, ok_at) VALUES (?, ?)"
                         " ON CONFLICT (name) DO UPDATE SET ok_at = excluded.ok_at", (name, stamp or now_iso()))

    def failed(self, name: str, error: str, *, stamp: str | None = None) -> None:
        """A call to ``name`` failed with ``error`` (at ``stamp``, default now)."""
        with self._sql.transaction() as conn:
            conn.execute("INSERT INTO health (name, failed_at, error) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                         " SET failed_at = excluded.failed_at, error = excluded.error",
                         (name, stamp or now_iso(), error[:500]))

    def get(self, name: str) -> dict | None:
        """``{"name", "ok_at", "failed_at", "error"}`` of ``name``, or None when no call was recorded."""
        return self._sql.one("SELECT name, ok_at, failed_at, error FROM health WHERE name = ?", (name,))

    def down(self, name: str, *, memory_seconds: float) -> dict | None:
        """The row of ``name`` when it is down: a failure within the last ``memory_seconds`` and newer than the last
        success. None when it is not (no failure, an old one, or a success since)."""
        row = self.get(name)
        if row is None or row["failed_at"] is None or row["failed_at"] < now_iso(-memory_seconds):
            return None
        if row["ok_at"] is not None and row["ok_at"] >= row["failed_at"]:
            return None
        return row
