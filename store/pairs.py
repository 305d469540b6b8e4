"""Preference pairs (the kept text ≻ the draft it replaced, one per learned edit, plus imported ones), their
feature rows (computed once per feature version, what the reward trains on), and each user's reward state: the
JSON document of their online step over the reward heads (MiCRo stage 2), stamped with the checkpoint it was
computed under.

``PairRows`` is one part of ``SQLStore`` (``store.sql``): its methods are the ``Store``'s and run on the store's
adapter ``_sql``. ``insert_pairs`` and ``put_reward_state`` write inside a caller's transaction (a learning step).

Reward states live in the table ``router_states``, its name from before they were called reward states: renaming it
would change the keys a hard delete reports (``removed``, public in the API) for nothing a reader gains.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ._sqlite import blob_to_vector, blobs_to_features, features_to_blob, now_iso, vector_to_blob

__all__ = ["PairRows", "insert_pairs", "put_reward_state"]


def insert_pairs(conn: Any, pairs: list[dict], *, source: str, stamp: str) -> None:
    """Inside a write transaction: add ``pairs`` (with their features when they carry them)."""
    for p in pairs:
        cur = conn.execute("INSERT INTO pairs (user_id, interaction_id, context, chosen, rejected, source,"
                           " created_at) VALUES (?,?,?,?,?,?,?) RETURNING id",
                           (p.get("user_id"), p.get("interaction_id"), p["context"], p["chosen"], p["rejected"],
                            source, stamp))
        if p.get("features") is not None:
            put_pair_features(conn, cur.fetchone()[0], p.get("user_id"), p["features"], p.get("context_vector"),
                              p["features_version"])


def put_pair_features(conn: Any, pair_id: int, user_id: int | None, features: np.ndarray,
                      context_vector: np.ndarray | None, version: int) -> None:
    conn.execute("INSERT INTO pair_features (pair_id, user_id, version, features, context_vector)"
                 " VALUES (?,?,?,?,?) ON CONFLICT (pair_id) DO UPDATE SET user_id = excluded.user_id,"
                 " version = excluded.version, features = excluded.features,"
                 " context_vector = excluded.context_vector",
                 (pair_id, user_id, version, features_to_blob(features),
                  None if context_vector is None else vector_to_blob(context_vector)))


def put_reward_state(conn: Any, user_id: int, state: dict) -> None:
    """Inside a write transaction: the user's reward state (table ``router_states``)."""
    conn.execute("INSERT INTO router_states (user_id, state, checkpoint, steps, updated_at)"
                 " VALUES (?,?,?,?,?) ON CONFLICT (user_id) DO UPDATE SET state = excluded.state,"
                 " checkpoint = excluded.checkpoint, steps = excluded.steps, updated_at = excluded.updated_at",
                 (user_id, json.dumps(state), state.get("checkpoint"), int(state.get("n", 0)), now_iso()))


class PairRows:
    """The pairs' and reward states' part of ``SQLStore``."""

    _sql: Any

    def pairs(self, *, user_id: int | None = None, since_id: int = 0) -> list[dict]:
        """Pairs with their texts, oldest first."""
        if user_id is None:
            return self._sql.query("SELECT * FROM pairs WHERE id > ? ORDER BY id", (since_id,))
        return self._sql.query("SELECT * FROM pairs WHERE user_id = ? AND id > ? ORDER BY id", (user_id, since_id))

    def count_pairs(self, *, since_id: int = 0, until_id: int | None = None) -> int:
        """Pairs with ``since_id`` < id (≤ ``until_id``)."""
        if until_id is None:
            return self._sql.one("SELECT COUNT(*) AS n FROM pairs WHERE id > ?", (since_id,))["n"]
        return self._sql.one("SELECT COUNT(*) AS n FROM pairs WHERE id > ? AND id <= ?", (since_id, until_id))["n"]

    def add_pairs(self, pairs: list[dict], *, source: str = "file") -> int:
        """Add pairs ``{"context", "chosen", "rejected", "user_id"?, "features"?, "features_version"?,
        "context_vector"?}`` in one transaction; returns how many."""
        with self._sql.transaction() as conn:
            insert_pairs(conn, pairs, source=source, stamp=now_iso())
        return len(pairs)

    def pair_features(self, version: int, *, contexts: bool = False, user_id: int | None = None) -> dict:
        """The stored features of every pair computed under feature ``version`` (oldest first; one user's with
        ``user_id``): ``{"ids", "user_ids", "features": (n, d), "contexts": (n, c) or None}``. With ``contexts``,
        each pair's context vector (a row of NaN for a pair without one; None when no pair has one). Reads the
        small feature rows only, never the pairs' texts."""
        where, params = "version = ?", [version]
        if user_id is not None:
            where += " AND user_id = ?"
            params.append(user_id)
        vector = "context_vector" if contexts else "NULL"
        rows = self._sql.tuples(  # one statement: one consistent snapshot
            f"SELECT pair_id, user_id, features, {vector} FROM pair_features WHERE {where} ORDER BY pair_id", params)
        found = next((r[3] for r in rows if r[3] is not None), None)
        vectors = None
        if found is not None:
            vectors = np.full((len(rows), len(blob_to_vector(found))), np.nan, dtype=np.float32)
            for i, r in enumerate(rows):
                if r[3] is not None:
                    vectors[i] = blob_to_vector(r[3])
        return {"ids": [r[0] for r in rows], "user_ids": [r[1] for r in rows],
                "features": blobs_to_features([r[2] for r in rows]), "contexts": vectors}

    def count_pair_features(self, version: int, *, user_id: int) -> int:
        """How many of the user's pairs have features of ``version``."""
        return self._sql.one("SELECT COUNT(*) AS n FROM pair_features WHERE user_id = ? AND version = ?",
                             (user_id, version))["n"]

    def pairs_without_features(self, version: int, *, limit: int = 1000) -> list[dict]:
        """Pairs whose features are missing or of another version (learned by an older redline): id, user id,
        texts, and their interaction's context vector (None for an imported pair)."""
        rows = self._sql.query(
            "SELECT p.id, p.user_id, p.chosen, p.rejected, i.context_vector FROM pairs p"
            " LEFT JOIN pair_features f ON f.pair_id = p.id LEFT JOIN interactions i ON i.id = p.interaction_id"
            " WHERE f.pair_id IS NULL OR f.version != ? ORDER BY p.id LIMIT ?", (version, limit))
        for row in rows:
            row["context_vector"] = blob_to_vector(row["context_vector"]) if row["context_vector"] else None
        return rows

    def set_pair_features(self, rows: list[dict], version: int) -> None:
        """Store recomputed features ``{"id", "user_id", "features", "context_vector"?}`` under ``version``, in one
        transaction (pairs deleted meanwhile are skipped)."""
        with self._sql.transaction() as conn:
            live = {r[0] for r in conn.execute(f"SELECT id FROM pairs WHERE id IN ({','.join('?' * len(rows))})",
                                               [r["id"] for r in rows])} if rows else set()
            for r in rows:
                if r["id"] in live:
                    put_pair_features(conn, r["id"], r.get("user_id"), r["features"], r.get("context_vector"),
                                      version)

    def reward_state(self, user_id: int) -> dict | None:
        """The user's reward state (the JSON document the agent stored), or None."""
        row = self._sql.one("SELECT state FROM router_states WHERE user_id = ?", (user_id,))
        return json.loads(row["state"]) if row else None

    def put_reward_states(self, states: dict[int, dict], *, chunk: int = 200) -> None:
        """Many users' states (after a retraining), ``chunk`` users a transaction, so the write lock is never held
        long (every API process's writes wait for it); users deleted meanwhile are skipped. Each state is stamped
        with the checkpoint it was computed under, so one not yet written is simply replayed when next used."""
        items = sorted(states.items())
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            ids = [user_id for user_id, _ in part]
            with self._sql.transaction() as conn:
                # the users locked first, in id order, as a learning step locks them before it writes their states:
                # else this write and a step each held a state row the other wanted next, in a circle (PostgreSQL
                # aborted the step, DeadlockDetected, and its batch was inferred again one edit at a time)
                self._sql.lock_users(conn, ids)
                marks = ",".join("?" * len(part))
                live = {r[0] for r in conn.execute(f"SELECT id FROM users WHERE id IN ({marks})", ids)}
                for user_id, state in part:
                    if user_id in live:
                        put_reward_state(conn, user_id, state)
