"""Named leases: a row that says who holds something until when, so processes that share the store (one host or
several) take turns without a lock that lives in one process's memory. The reward retraining holds one; each
learner keeps one that says it is alive."""

from __future__ import annotations

from ._sqlite import SQLite, now_iso

__all__ = ["Leases"]


class Leases:
    def __init__(self, sql: SQLite):
        self._sql = sql

    def acquire(self, name: str, owner: str, *, seconds: float) -> bool:
        """Take ``name`` for ``owner`` for ``seconds`` when nobody holds it (or its lease ended, or ``owner`` already
        holds it: then it is renewed). Returns whether ``owner`` holds it now."""
        now = now_iso()
        with self._sql.transaction() as conn:
            row = conn.execute(
                "INSERT INTO leases (name, owner, until, acquired_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE"
                " SET owner = excluded.owner, until = excluded.until,"
                " acquired_at = CASE WHEN leases.owner = excluded.owner THEN leases.acquired_at"
                " ELSE excluded.acquired_at END"
                " WHERE leases.owner = excluded.owner OR leases.until <= ? RETURNING owner",
                (name, owner, now_iso(seconds), now, now)).fetchone()
        return row is not None

    def renew(self, name: str, owner: str, *, seconds: float) -> bool:
        """Extend ``owner``'s lease of ``name``; False when it no longer holds it."""
        with self._sql.transaction() as conn:
            return conn.execute("UPDATE leases SET until = ? WHERE name = ? AND owner = ?",
                                (now_iso(seconds), name, owner)).rowcount == 1

    def release(self, name: str, owner: str) -> None:
        """Give ``name`` up (only its holder can)."""
        with self._sql.transaction() as conn:
            conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

    def holder(self, name: str) -> str | None:
        """Who holds ``name`` now (None: nobody, or the lease ended)."""
        row = self._sql.one("SELECT owner FROM leases WHERE name = ? AND until > ?", (name, now_iso()))
        return row["owner"] if row else None

    def live(self, prefix: str) -> list[str]:
        """The names starting with ``prefix`` whose lease has not ended."""
        return [r["name"] for r in self._sql.query("SELECT name FROM leases WHERE substr(name, 1, ?) = ? AND until > ?"
                                                   " ORDER BY name", (len(prefix), prefix, now_iso()))]
