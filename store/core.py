"""The core rows: users, interactions, edits and the learning step, preferences, the aggregation cache,
preference pairs, per-user routing state, and a user's export and hard delete.

``SQLStore`` holds this logic once, as SQL over an adapter (``_sqlite.SQLite`` or ``_postgres.Postgres``, each with
its ``Dialect``); ``SQLiteStore`` (here) and ``PostgresStore`` (``store.postgres``) only open their adapter and
migrate. Writes that belong together happen in one transaction, so a crash leaves either all of a learning step or
none of it; on PostgreSQL a write that changes a user's state first locks the user's row (several users: in id
order). Jobs (``store.jobs``) and API keys (``store.keys``) have their own modules.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ._sqlite import SQLite, blob_to_vector, blobs_to_features, features_to_blob, now_iso, vector_to_blob
from .checkpoints import Checkpoints
from .errors import Conflict, NotFound
from .health import Health
from .jobs import Jobs
from .keys import ApiKeys, Sessions
from .leases import Leases
from .rules import Rules
from .schema import migrate, schema_version

__all__ = ["SQLStore", "SQLiteStore"]

# An edit's columns (PostgreSQL's edits also have an ``id``, their insertion order, where SQLite has its rowid).
_EDIT_COLUMNS = "interaction_id, user_id, edited_text, cost, is_edit, created_at, learned_at, preference_id"
_EDIT_ROW = f"SELECT {_EDIT_COLUMNS} FROM edits WHERE interaction_id = ?"
_JSON_COLUMNS = ("prompt", "preference_ids", "neighbours", "candidates", "timings", "applied_rules")


class SQLStore:
    """All persistent state of redline, as SQL over ``sql`` (an adapter: ``SQLite`` or ``Postgres``). Build one with
    ``open_store`` (or ``SQLiteStore``/``PostgresStore``)."""

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

    # -- users ------------------------------------------------------------------------------------

    def user_id(self, tenant: str, name: str, *, create: bool = True) -> int:
        """The id of ``name`` in ``tenant``; created on first sight unless ``create=False``."""
        row = self._sql.one("SELECT id FROM users WHERE tenant = ? AND name = ?", (tenant, name))
        if row:
            return row["id"]
        if not create:
            raise NotFound(f"unknown user {name!r}")
        with self._sql.transaction() as conn:
            conn.execute("INSERT INTO users (tenant, name, created_at, version) VALUES (?, ?, ?, 0)"
                         " ON CONFLICT DO NOTHING", (tenant, name, now_iso()))
        return self._sql.one("SELECT id FROM users WHERE tenant = ? AND name = ?", (tenant, name))["id"]

    def user(self, user_id: int) -> dict:
        row = self._sql.one("SELECT * FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise NotFound(f"unknown user id {user_id}")
        return row

    def user_version(self, user_id: int) -> int:
        row = self._sql.one("SELECT version FROM users WHERE id = ?", (user_id,))
        return row["version"] if row else -1

    def user_stamp(self, user_id: int) -> tuple[str, int] | None:
        """What a per-process cache of the user's preferences is checked against: ``(created_at, version)``. The
        version changes with every change to the user's preferences; the creation time tells a user created again
        under the id of a deleted one (ids of deleted rows are reused) from the deleted one. None: no such user."""
        row = self._sql.one("SELECT created_at, version FROM users WHERE id = ?", (user_id,))
        return (row["created_at"], row["version"]) if row else None

    def _bump(self, conn: Any, user_id: int) -> None:
        conn.execute("UPDATE users SET version = version + 1 WHERE id = ?", (user_id,))

    def delete_user(self, user_id: int) -> dict[str, int]:
        """Hard delete: every row that belongs to the user, zeroed on disk (``secure_delete``) and checkpointed
        out of the WAL. When it removed preference pairs, a ``retrain`` job is queued in the same transaction (the
        shared reward checkpoints were trained on them). Returns the rows removed per table."""
        removed: dict[str, int] = {}
        with self._sql.transaction() as conn:
            self._sql.lock_users(conn, [user_id], delete=True)
            ids = [r[0] for r in conn.execute("SELECT id FROM interactions WHERE user_id = ?", (user_id,))]
            removed["jobs"] = self.jobs.delete(conn, ids)
            removed.update(self.rules.delete_user(conn, user_id))
            for table in ("edits", "preferences", "pairs", "pair_features", "router_states", "aggregations"):
                removed[table] = conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,)).rowcount
            removed["interactions"] = conn.execute("DELETE FROM interactions WHERE user_id = ?",
                                                   (user_id,)).rowcount
            removed["users"] = conn.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount
            if removed["pairs"]:
                self.jobs.enqueue(conn, None, stamp=now_iso(), kind="retrain")
        self._sql.checkpoint()  # the rows are zeroed (secure_delete); the WAL still holds the texts until now
        return removed

    def queue_retrain(self) -> None:
        """Queue a ``retrain`` job (a learner retrains the shared reward and keeps no older checkpoint)."""
        with self._sql.transaction() as conn:
            self.jobs.enqueue(conn, None, stamp=now_iso(), kind="retrain")

    # -- interactions -----------------------------------------------------------------------------

    def add_interaction(self, user_id: int, *, task: str, context: str, context_vector: np.ndarray,
                        prompt: Any, draft: str, preference_used: str | None,
                        preference_ids: list[int], neighbours: list[dict], candidates: list[dict],
                        strategy: str, model: str, tokens_in: int, tokens_out: int,
                        timings: dict[str, float], raw_draft: str | None = None,
                        applied_rules: list[int] | None = None, interaction_id: str | None = None) -> str:
        """Store one generation; ``raw_draft`` is the chosen text as generated when the user's edit rules
        changed it (``applied_rules``: their ids), else None. ``interaction_id``: one the caller already announced
        (a streamed generation names it first), else a new one."""
        interaction_id = interaction_id or uuid.uuid4().hex
        row = (interaction_id, user_id, task, context, vector_to_blob(context_vector), json.dumps(prompt), draft,
               preference_used, json.dumps(preference_ids), json.dumps(neighbours), json.dumps(candidates), strategy,
               model, tokens_in, tokens_out, json.dumps(timings), now_iso(), raw_draft, json.dumps(applied_rules or []))
        self._sql.grouped(lambda conn: conn.execute(  # committed with other requests' writes: one fsync for all
            "INSERT INTO interactions (id, user_id, task, context, context_vector, prompt, draft,"
            " preference_used, preference_ids, neighbours, candidates, strategy, model, tokens_in,"
            " tokens_out, timings, created_at, raw_draft, applied_rules)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row))
        return interaction_id

    def interaction(self, interaction_id: str, *, tenant: str | None = None) -> dict:
        """One interaction, decoded; ``NotFound`` if unknown or (with ``tenant``) another tenant's."""
        row = self._sql.one("SELECT i.*, u.tenant AS tenant, u.name AS user FROM interactions i"
                        " JOIN users u ON u.id = i.user_id WHERE i.id = ?", (interaction_id,))
        if row is None or (tenant is not None and row["tenant"] != tenant):
            raise NotFound(f"unknown interaction id {interaction_id!r}")
        for key in _JSON_COLUMNS:
            row[key] = json.loads(row[key]) if row[key] else None
        row["context_vector"] = blob_to_vector(row["context_vector"])
        return row

    # -- edits and learning -----------------------------------------------------------------------

    def submit_edit(self, interaction_id: str, edited_text: str, *, cost: int, is_edit: bool,
                    job_kind: str = "learn") -> tuple[dict, bool]:
        """Durably record the edit of an interaction and queue its learning job, atomically.

        Returns ``(edit_row, created)``. Submitting the same text again returns the stored row with
        ``created=False``; a different text for an already edited interaction raises ``Conflict``.
        """
        read = ("SELECT i.user_id AS owner, " + ", ".join(f"e.{c}" for c in _EDIT_COLUMNS.split(", ")) +
                " FROM interactions i LEFT JOIN edits e ON e.interaction_id = i.id WHERE i.id = ?")

        def write(conn: Any) -> tuple[dict, bool]:
            cur = conn.execute(read, (interaction_id,))
            row = cur.fetchone()
            # PostgreSQL: the user's row locked, then read again: two submissions of one edit take turns (the second
            # sees the first's), and a hard delete of the user is wholly before or after.
            if row is not None and self._sql.lock_users(conn, [row[0]]):
                cur = conn.execute(read, (interaction_id,))
                row = cur.fetchone()
            if row is None:
                raise NotFound(f"unknown interaction id {interaction_id!r}")
            user_id, existing = row[0], dict(zip(_EDIT_COLUMNS.split(", "), row[1:]))
            if existing["interaction_id"] is not None:
                if existing["edited_text"] != edited_text:
                    raise Conflict(f"interaction {interaction_id} already has a different edit")
                return existing, False
            stamp = now_iso()
            cur = conn.execute("INSERT INTO edits (interaction_id, user_id, edited_text, cost, is_edit, created_at)"
                               f" VALUES (?,?,?,?,?,?) RETURNING {_EDIT_COLUMNS}",
                               (interaction_id, user_id, edited_text, cost, int(is_edit), stamp))
            created = dict(zip(_EDIT_COLUMNS.split(", "), cur.fetchone()))
            self.jobs.enqueue(conn, interaction_id, stamp=stamp, kind=job_kind)
            return created, True

        # Committed with other requests' writes (group commit): durable when this returns, one fsync for many.
        return self._sql.grouped(write)

    def edit(self, interaction_id: str) -> dict | None:
        return self._sql.one(_EDIT_ROW, (interaction_id,))

    def edited_drafts(self, user_id: int) -> list[dict]:
        """The user's drafts that were edited (cost above δ): ``draft``, ``edited_text`` and the decoded
        ``context_vector`` of each, oldest first."""
        rows = self._sql.query(
            "SELECT i.draft, i.context_vector, e.edited_text FROM edits e JOIN interactions i"
            " ON i.id = e.interaction_id WHERE e.user_id = ? AND e.is_edit = 1", (user_id,))
        for row in rows:
            row["context_vector"] = blob_to_vector(row["context_vector"])
        return rows

    def complete_learning(self, interaction_id: str, *, preference: dict | None,
                          pair: dict | None, router_state: dict | None = None, rules: dict | None = None) -> int | None:
        """Apply one learning step, exactly once, in one transaction.

        ``preference``: ``{"text", "kind", "context_vector"}`` or None; ``pair``: ``{"context", "chosen",
        "rejected"}`` plus optional ``"features"`` (array), ``"features_version"`` and ``"context_vector"``, or None;
        ``router_state``: the user's reward state (a JSON-able dict) or None; ``rules``: the edit rules' evidence,
        ``{"new_rules", "observations", "prune_after"}`` (see ``Rules.record``/``prune``) or None. Returns the new
        preference id, or None. If the edit was already learned nothing is written and ``Conflict`` is raised.
        """
        with self._sql.transaction() as conn:
            read = "SELECT user_id, learned_at FROM edits WHERE interaction_id = ?"
            row = conn.execute(read, (interaction_id,)).fetchone()
            if row is not None and self._sql.lock_users(conn, [row[0]]):
                row = conn.execute(read, (interaction_id,)).fetchone()  # another learner may have just written it
            if row is None:
                raise NotFound(f"no edit for interaction {interaction_id!r}")
            user_id, learned_at = row
            if learned_at is not None:
                raise Conflict(f"the edit of interaction {interaction_id} was already learned")
            stamp = now_iso()
            preference_id = None
            if preference is not None:
                cur = conn.execute(
                    "INSERT INTO preferences (user_id, text, kind, context_vector, interaction_id,"
                    " created_at, updated_at, user_edited) VALUES (?,?,?,?,?,?,?,0) RETURNING id",
                    (user_id, preference["text"], preference["kind"],
                     vector_to_blob(preference["context_vector"]), interaction_id, stamp, stamp))
                preference_id = cur.fetchone()[0]
            if pair is not None:
                self._insert_pairs(conn, [{**pair, "user_id": user_id, "interaction_id": interaction_id}],
                                   source="edit", stamp=stamp)
            if router_state is not None:
                self._put_router_state(conn, user_id, router_state)
            if rules is not None:
                self.rules.record(conn, user_id, new_rules=rules["new_rules"], observations=rules["observations"],
                                  stamp=stamp)
                self.rules.prune(conn, user_id, recent=rules["prune_after"], keep=interaction_id)
            conn.execute("UPDATE edits SET learned_at = ?, preference_id = ? WHERE interaction_id = ?",
                         (stamp, preference_id, interaction_id))
            self.jobs.finish(conn, interaction_id, stamp=stamp)
            self._bump(conn, user_id)
        return preference_id

    def complete_learnings(self, writes: list[dict]) -> dict[str, int | None | Conflict | NotFound]:
        """Apply several learning steps in one transaction (one commit for the batch): each of ``writes`` is
        ``{"interaction_id", "preference", "pair", "router_state", "rules"}`` as ``complete_learning`` takes them.
        Returns, per interaction id, its new preference id (or None), or the ``Conflict`` (already learned,
        e.g. by another learner) or ``NotFound`` (deleted meanwhile) that left that one unwritten. The users
        concerned are locked first, in id order."""
        ids = [w["interaction_id"] for w in writes]
        out: dict[str, int | None | Conflict | NotFound] = {}
        if not ids:
            return out
        with self._sql.transaction() as conn:
            marks = ",".join("?" * len(ids))
            self._sql.lock_users(conn, [r[0] for r in conn.execute(
                f"SELECT DISTINCT user_id FROM edits WHERE interaction_id IN ({marks})", ids)])
            for w in writes:
                try:
                    out[w["interaction_id"]] = self.complete_learning(
                        w["interaction_id"], preference=w.get("preference"), pair=w.get("pair"),
                        router_state=w.get("router_state"), rules=w.get("rules"))
                except (Conflict, NotFound) as exc:
                    out[w["interaction_id"]] = exc
        return out

    # -- preferences ------------------------------------------------------------------------------

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
            self._drop_aggregations(conn, user_id)
            self._bump(conn, user_id)
        return self.preference(user_id, preference_id)

    def delete_preference(self, user_id: int, preference_id: int) -> None:
        with self._sql.transaction() as conn:
            self._sql.lock_users(conn, [user_id])
            cur = conn.execute("DELETE FROM preferences WHERE id = ? AND user_id = ?", (preference_id, user_id))
            if cur.rowcount == 0:
                raise NotFound(f"unknown preference id {preference_id}")
            conn.execute("UPDATE edits SET preference_id = NULL WHERE preference_id = ?", (preference_id,))
            self._drop_aggregations(conn, user_id)
            self._bump(conn, user_id)
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

    def _drop_aggregations(self, conn: Any, user_id: int) -> None:
        conn.execute("DELETE FROM aggregations WHERE user_id = ?", (user_id,))

    # -- pairs and routing state ------------------------------------------------------------------

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

    @staticmethod
    def _insert_pairs(conn: Any, pairs: list[dict], *, source: str, stamp: str) -> None:
        for p in pairs:
            cur = conn.execute("INSERT INTO pairs (user_id, interaction_id, context, chosen, rejected, source,"
                               " created_at) VALUES (?,?,?,?,?,?,?) RETURNING id",
                               (p.get("user_id"), p.get("interaction_id"), p["context"], p["chosen"], p["rejected"],
                                source, stamp))
            if p.get("features") is not None:
                SQLStore._put_pair_features(conn, cur.fetchone()[0], p.get("user_id"), p["features"],
                                         p.get("context_vector"), p["features_version"])

    @staticmethod
    def _put_pair_features(conn: Any, pair_id: int, user_id: int | None, features: np.ndarray,
                           context_vector: np.ndarray | None, version: int) -> None:
        conn.execute("INSERT INTO pair_features (pair_id, user_id, version, features, context_vector)"
                     " VALUES (?,?,?,?,?) ON CONFLICT (pair_id) DO UPDATE SET user_id = excluded.user_id,"
                     " version = excluded.version, features = excluded.features,"
                     " context_vector = excluded.context_vector",
                     (pair_id, user_id, version, features_to_blob(features),
                      None if context_vector is None else vector_to_blob(context_vector)))

    def add_pairs(self, pairs: list[dict], *, source: str = "file") -> int:
        """Add pairs ``{"context", "chosen", "rejected", "user_id"?, "features"?, "features_version"?,
        "context_vector"?}`` in one transaction; returns how many."""
        with self._sql.transaction() as conn:
            self._insert_pairs(conn, pairs, source=source, stamp=now_iso())
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
                    self._put_pair_features(conn, r["id"], r.get("user_id"), r["features"], r.get("context_vector"),
                                            version)

    def router_state(self, user_id: int) -> dict | None:
        """The user's reward state (the JSON document the agent stored), or None."""
        row = self._sql.one("SELECT state FROM router_states WHERE user_id = ?", (user_id,))
        return json.loads(row["state"]) if row else None

    def _put_router_state(self, conn: Any, user_id: int, state: dict) -> None:
        conn.execute("INSERT INTO router_states (user_id, state, checkpoint, steps, updated_at)"
                     " VALUES (?,?,?,?,?) ON CONFLICT (user_id) DO UPDATE SET state = excluded.state,"
                     " checkpoint = excluded.checkpoint, steps = excluded.steps, updated_at = excluded.updated_at",
                     (user_id, json.dumps(state), state.get("checkpoint"), int(state.get("n", 0)), now_iso()))

    def put_router_state(self, user_id: int, state: dict) -> None:
        with self._sql.transaction() as conn:
            self._put_router_state(conn, user_id, state)

    def put_router_states(self, states: dict[int, dict], *, chunk: int = 200) -> None:
        """Many users' states (after a retraining), ``chunk`` users a transaction, so the write lock is never held
        long (every API process's writes wait for it); users deleted meanwhile are skipped. Each state is stamped
        with the checkpoint it was computed under, so one not yet written is simply replayed when next used."""
        items = list(states.items())
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            with self._sql.transaction() as conn:
                marks = ",".join("?" * len(part))
                live = {r[0] for r in conn.execute(f"SELECT id FROM users WHERE id IN ({marks})",
                                                   [user_id for user_id, _ in part])}
                for user_id, state in part:
                    if user_id in live:
                        self._put_router_state(conn, user_id, state)

    # -- stats and export -------------------------------------------------------------------------

    def edit_history(self, user_id: int) -> list[dict]:
        """The user's edits oldest first: ``created_at``, ``cost`` and ``is_edit`` (above δ) of each."""
        rows = self._sql.query("SELECT created_at, cost, is_edit FROM edits WHERE user_id = ?"
                               " ORDER BY created_at, rowid", (user_id,))
        for row in rows:
            row["is_edit"] = bool(row["is_edit"])
        return rows

    def edit_costs(self, user_id: int) -> list[int]:
        """Edit costs of the user's edited interactions, oldest first."""
        return [r["cost"] for r in self.edit_history(user_id)]

    def count_users(self, tenant: str) -> int:
        return self._sql.one("SELECT COUNT(*) AS n FROM users WHERE tenant = ?", (tenant,))["n"]

    def user_summaries(self, tenant: str, *, window: int = 10, limit: int = 100, offset: int = 0) -> list[dict]:
        """The tenant's users, most recently active first: ``user``, ``created_at``, ``last_activity`` (the
        newest interaction or edit), ``edits``, ``preferences``, and the sums and counts of the costs of their
        first and last ``window`` edits (``first_sum``/``first_n``, ``last_sum``/``last_n``) for exact means."""
        return self._sql.query(
            f"WITH activity AS (SELECT u.id, u.name, u.created_at, {self._sql.dialect.greatest}("
            "   COALESCE((SELECT MAX(created_at) FROM interactions WHERE user_id = u.id), u.created_at),"
            "   COALESCE((SELECT MAX(created_at) FROM edits WHERE user_id = u.id), u.created_at)) AS last_activity"
            "  FROM users u WHERE u.tenant = ?),"
            " page AS (SELECT * FROM activity ORDER BY last_activity DESC, name LIMIT ? OFFSET ?),"
            " ranked AS (SELECT e.user_id, e.cost,"
            "   ROW_NUMBER() OVER (PARTITION BY e.user_id ORDER BY e.created_at, e.rowid) AS from_first,"
            "   ROW_NUMBER() OVER (PARTITION BY e.user_id ORDER BY e.created_at DESC, e.rowid DESC) AS from_last"
            "  FROM edits e JOIN page ON page.id = e.user_id)"
            " SELECT page.name AS user, page.created_at, page.last_activity, COUNT(r.cost) AS edits,"
            "  (SELECT COUNT(*) FROM preferences WHERE user_id = page.id) AS preferences,"
            "  SUM(CASE WHEN r.from_first <= ? THEN r.cost END) AS first_sum,"
            "  COUNT(CASE WHEN r.from_first <= ? THEN 1 END) AS first_n,"
            "  SUM(CASE WHEN r.from_last <= ? THEN r.cost END) AS last_sum,"
            "  COUNT(CASE WHEN r.from_last <= ? THEN 1 END) AS last_n"
            " FROM page LEFT JOIN ranked r ON r.user_id = page.id"
            " GROUP BY page.id, page.name, page.created_at, page.last_activity"
            " ORDER BY page.last_activity DESC, page.name",
            (tenant, limit, offset, window, window, window, window))

    def export_user(self, user_id: int) -> dict:
        with self._sql.snapshot():  # one state: never an edit marked learned without what its learning stored
            return self._export_user(user_id)

    def _export_user(self, user_id: int) -> dict:
        user = self.user(user_id)
        interactions = self._sql.query("SELECT * FROM interactions WHERE user_id = ? ORDER BY created_at", (user_id,))
        for row in interactions:
            row.pop("context_vector", None)
            for key in _JSON_COLUMNS:
                row[key] = json.loads(row[key]) if row[key] else None
        prefs = self._sql.query("SELECT id, text, kind, interaction_id, created_at, updated_at, user_edited"
                            " FROM preferences WHERE user_id = ? ORDER BY id", (user_id,))
        return {
            "user": {"name": user["name"], "tenant": user["tenant"], "created_at": user["created_at"]},
            "interactions": interactions,
            "edits": self._sql.query(f"SELECT {_EDIT_COLUMNS} FROM edits WHERE user_id = ? ORDER BY created_at, rowid",
                                     (user_id,)),
            "preferences": prefs,
            "pairs": self.pairs(user_id=user_id),
            "router_state": self.router_state(user_id),
            "aggregations": self._sql.query("SELECT text, created_at FROM aggregations WHERE user_id = ?"
                                        " ORDER BY created_at", (user_id,)),
            "rules": self.rules.export(user_id),
        }

    def counts(self) -> dict[str, int]:
        return {t: self._sql.one(f"SELECT COUNT(*) AS n FROM {t}")["n"]
                for t in ("users", "interactions", "edits", "preferences", "pairs", "jobs", "rules",
                          "rule_observations")}


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
