"""Preferences (each with the context vector it was learned in, and the interaction and edit that taught it), a
user's corrections and removals, and the aggregation cache: the combined preference of a set of neighbours.

``PreferenceRows`` is one part of ``SQLStore`` (``store.sql``): its methods are the ``Store``'s and run on the
store's adapter ``_sql``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._sqlite import blob_to_vector, now_iso
from .errors import NotFound

__all__ = ["PreferenceRows", "bump_version", "drop_aggregations"]


def bump_version(conn: Any, user_id: int) -> None:
    """Inside a write transaction: the user's preferences changed (the version ``user_stamp`` gives per-process
    caches to check)."""
    conn.execute("UPDATE users SET version = version + 1 WHERE id = ?", (user_id,))


def drop_aggregations(conn: Any, user_id: int) -> None:
    """Inside a write transaction: forget the user's cached aggregations (their preferences changed)."""
    conn.execute("DELETE FROM aggregations WHERE user_id = ?", (user_id,))


class PreferenceRows:
    """The preferences' and the aggregation cache's part of ``SQLStore``."""

    _sql: Any

    def preference_vectors(self, user_id: int) -> tuple[list[int], np.ndarray]:
        rows = self._sql.query("SELECT id, context_vector FROM preferences WHERE user_id = ? ORDER BY id",
                           (user_id,))
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [r["id"] for r in rows], np.stack([blob_to_vector(r["context_vector"]) for r in rows])

    def preferences_by_id(self, ids: list[int]) -> dict[int, dict]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._sql.query(f"SELECT id, user_id, text, kind, interaction_id, created_at, updated_at,"
                           f" user_edited FROM preferences WHERE id IN ({marks})", tuple(ids))
        return {r["id"]: r for r in rows}

    _PREFERENCE_ROWS = ("SELECT p.id, p.text, p.kind, p.interaction_id, p.created_at, p.updated_at, p.user_edited,"
                        " i.context, i.task, i.draft, e.edited_text, e.cost"
                        " FROM preferences p LEFT JOIN interactions i ON i.id = p.interaction_id"
                        " LEFT JOIN edits e ON e.interaction_id = p.interaction_id WHERE p.user_id = ?")

    def preferences(self, user_id: int, *, limit: int = 50, offset: int = 0) -> list[dict]:
        """The user's preferences, newest first, each with the interaction and edit that taught it."""
        return self._sql.query(self._PREFERENCE_ROWS + " ORDER BY p.id DESC LIMIT ? OFFSET ?", (user_id, limit, offset))

    def preference(self, user_id: int, preference_id: int) -> dict:
        """One preference of the user as ``preferences`` lists it; ``NotFound`` when unknown or another user's."""
        row = self._sql.one(self._PREFERENCE_ROWS + " AND p.id = ?", (user_id, preference_id))
        if row is None:
            raise NotFound(f"unknown preference id {preference_id}")
        return row

    def count_preferences(self, user_id: int) -> int:
        return self._sql.one("SELECT COUNT(*) AS n FROM preferences WHERE user_id = ?", (user_id,))["n"]

    def update_preference(self, user_id: int, preference_id: int, text: str) -> dict:
        with self._sql.transaction() as conn:
            self._sql.lock_users(conn, [user_id])
            cur = conn.execute("UPDATE preferences SET text = ?, user_edited = 1, updated_at = ?"
                               " WHERE id = ? AND user_id = ?", (text, now_iso(), preference_id, user_id))
            if cur.rowcount == 0:
                raise NotFound(f"unknown preference id {preference_id}")
            drop_aggregations(conn, user_id)
            bump_version(conn, user_id)
        return self.preference(user_id, preference_id)

    def delete_preference(self, user_id: int, preference_id: int) -> None:
        with self._sql.transaction() as conn:
            self._sql.lock_users(conn, [user_id])
            cur = conn.execute("DELETE FROM preferences WHERE id = ? AND user_id = ?", (preference_id, user_id))
            if cur.rowcount == 0:
                raise NotFound(f"unknown preference id {preference_id}")
            conn.execute("UPDATE edits SET preference_id = NULL WHERE preference_id = ?", (preference_id,))
            drop_aggregations(conn, user_id)
            bump_version(conn, user_id)
        self._sql.checkpoint()

    # -- aggregation cache ------------------------------------------------------------------------

    # Each row belongs to the user whose preferences it combines: only that user reads it, and it goes
    # with the user's hard delete and with any change to the user's preferences (a deleted or corrected
    # preference must not live on inside a cached aggregate).

    def cached_aggregation(self, user_id: int, key: str) -> str | None:
        row = self._sql.one("SELECT text FROM aggregations WHERE key = ? AND user_id = ?", (key, user_id))
        return row["text"] if row else None

    def cache_aggregation(self, user_id: int, key: str, text: str) -> None:
        with self._sql.transaction() as conn:
            conn.execute("INSERT INTO aggregations (key, user_id, text, created_at) VALUES (?,?,?,?)"
                         " ON CONFLICT (key) DO UPDATE SET user_id = excluded.user_id, text = excluded.text,"
                         " created_at = excluded.created_at", (key, user_id, text, now_iso()))

