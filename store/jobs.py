"""The background job queue: one ``learn`` job per accepted edit, queued in the edit's own transaction and
marked done in the learning step's; a crash leaves jobs 'pending' or 'running', to be run again."""

from __future__ import annotations

import sqlite3
from typing import Sequence

from ._sqlite import SQLite, now_iso

__all__ = ["Jobs"]


class Jobs:
    def __init__(self, sql: SQLite):
        self._sql = sql

    def enqueue(self, conn: sqlite3.Connection, interaction_id: str, *, stamp: str, kind: str = "learn") -> None:
        """Queue a job inside the caller's transaction ``conn``."""
        conn.execute("INSERT INTO jobs (kind, interaction_id, status, attempts, created_at, updated_at)"
                     " VALUES (?, ?, 'pending', 0, ?, ?)", (kind, interaction_id, stamp, stamp))

    def finish(self, conn: sqlite3.Connection, interaction_id: str, *, stamp: str, kind: str = "learn") -> None:
        """Mark the interaction's job done inside the caller's transaction ``conn``."""
        conn.execute("UPDATE jobs SET status = 'done', updated_at = ? WHERE interaction_id = ? AND kind = ?",
                     (stamp, interaction_id, kind))

    def delete(self, conn: sqlite3.Connection, interaction_ids: list[str]) -> int:
        """Remove the jobs of these interactions inside ``conn``; returns how many."""
        if not interaction_ids:
            return 0
        marks = ",".join("?" * len(interaction_ids))
        return conn.execute(f"DELETE FROM jobs WHERE interaction_id IN ({marks})", interaction_ids).rowcount

    def pending(self, *, limit: int = 100) -> list[dict]:
        """Jobs not yet done, oldest first; 'running' ones are included (a crash may have left them)."""
        return self._sql.query("SELECT * FROM jobs WHERE status IN ('pending', 'running') ORDER BY id LIMIT ?",
                               (limit,))

    def mark(self, job_ids: int | Sequence[int], status: str, *, error: str | None = None) -> None:
        """Set the status of one job or several (one transaction); marking them 'running' counts an attempt."""
        ids = [job_ids] if isinstance(job_ids, int) else list(job_ids)
        with self._sql.transaction() as conn:
            conn.executemany("UPDATE jobs SET status = ?, error = ?, attempts = attempts + (? = 'running'),"
                             " updated_at = ? WHERE id = ?", [(status, error, status, now_iso(), i) for i in ids])

    def release(self, job_ids: Sequence[int]) -> None:
        """Put jobs marked 'running' back to 'pending' without counting that attempt (they were not tried)."""
        with self._sql.transaction() as conn:
            conn.executemany("UPDATE jobs SET status = 'pending', attempts = MAX(attempts - 1, 0), updated_at = ?"
                             " WHERE id = ? AND status = 'running'", [(now_iso(), i) for i in job_ids])

    def get(self, interaction_id: str, *, kind: str = "learn") -> dict | None:
        """The interaction's job, or None."""
        return self._sql.one("SELECT * FROM jobs WHERE interaction_id = ? AND kind = ?", (interaction_id, kind))

    def counts(self) -> dict[str, int]:
        """Jobs per status."""
        return {r["status"]: r["n"] for r in self._sql.query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")}

    def queued(self) -> int:
        """Jobs pending or running: the learning queue's depth."""
        return self._sql.one("SELECT COUNT(*) AS n FROM jobs WHERE status IN ('pending', 'running')")["n"]
