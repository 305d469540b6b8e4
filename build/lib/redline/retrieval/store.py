"""The SQLite store: the single source of truth for users, interactions, edits, preferences,
preference pairs, per-user routing state, background jobs and API keys.

Schema changes are forward migrations numbered from 1; ``meta.schema_version`` records the last one
applied. Writes that belong together happen in one ``BEGIN IMMEDIATE`` transaction, so a crash leaves
either all of a learning step or none of it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import sqlite_utils

from .errors import Conflict, NotFound

__all__ = ["Store", "SCHEMA_VERSION", "now_iso", "vector_to_blob", "blob_to_vector"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


def _m1_initial(db: sqlite_utils.Database) -> None:
    db["users"].create({"id": int, "tenant": str, "name": str, "created_at": str, "version": int},
                       pk="id", not_null={"tenant", "name"}, defaults={"version": 0})
    db["users"].create_index(["tenant", "name"], unique=True)
    db["interactions"].create({
        "id": str, "user_id": int, "task": str, "context": str, "context_vector": bytes,
        "prompt": str, "draft": str, "preference_used": str, "preference_ids": str,
        "neighbours": str, "candidates": str, "strategy": str, "model": str,
        "tokens_in": int, "tokens_out": int, "timings": str, "created_at": str,
    }, pk="id", foreign_keys=[("user_id", "users", "id")])
    db["interactions"].create_index(["user_id", "created_at"])
    db["edits"].create({
        "interaction_id": str, "user_id": int, "edited_text": str, "cost": int, "is_edit": int,
        "created_at": str, "learned_at": str, "preference_id": int,
    }, pk="interaction_id", foreign_keys=[("interaction_id", "interactions", "id")])
    db["edits"].create_index(["user_id", "created_at"])
    db["preferences"].create({
        "id": int, "user_id": int, "text": str, "kind": str, "context_vector": bytes,
        "interaction_id": str, "created_at": str, "updated_at": str, "user_edited": int,
    }, pk="id", foreign_keys=[("user_id", "users", "id")], defaults={"user_edited": 0})
    db["preferences"].create_index(["user_id", "id"])
    db["pairs"].create({
        "id": int, "user_id": int, "interaction_id": str, "context": str, "chosen": str,
        "rejected": str, "source": str, "created_at": str,
    }, pk="id")
    db["pairs"].create_index(["user_id"])
    db["router_states"].create({"user_id": int, "weights": str, "steps": int, "updated_at": str},
                               pk="user_id")
    db["jobs"].create({
        "id": int, "kind": str, "interaction_id": str, "status": str, "attempts": int,
        "error": str, "created_at": str, "updated_at": str,
    }, pk="id", defaults={"attempts": 0})
    db["jobs"].create_index(["kind", "interaction_id"], unique=True)
    db["jobs"].create_index(["status", "id"])
    db["api_keys"].create({
        "id": int, "tenant": str, "name": str, "key_hash": str, "prefix": str,
        "created_at": str, "revoked_at": str,
    }, pk="id")
    db["api_keys"].create_index(["key_hash"], unique=True)
    db["aggregations"].create({"key": str, "text": str, "created_at": str}, pk="key")


def _m2_aggregation_owner(db: sqlite_utils.Database) -> None:
    """Cached aggregations get the id of the user whose preferences they combine, so a hard delete
    can remove them. Rows cached before this have no owner and their key is a one-way hash, so they
    cannot be attributed: the cache is emptied (it refills on demand, one LLM call per neighbourhood)."""
    db.execute("DELETE FROM aggregations")
    db["aggregations"].add_column("user_id", int)
    db["aggregations"].create_index(["user_id"])


# Forward migrations; append only. Each runs once, in its own transaction.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1_initial, _m2_aggregation_owner]
SCHEMA_VERSION = len(MIGRATIONS)


class Store:
    """All persistent state of redline, in one SQLite file (``":memory:"`` for tests).

    >>> store = Store(":memory:")
    >>> uid = store.user_id("default", "alice")
    """

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
        self._migrate()

    # -- plumbing ---------------------------------------------------------------------------------

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

    def _query(self, sql: str, params: tuple | dict = ()) -> list[dict]:
        with self._lock:
            cur = self.db.conn.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

    def _one(self, sql: str, params: tuple | dict = ()) -> dict | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    @property
    def schema_version(self) -> int:
        if not self.db["meta"].exists():
            return 0
        row = self._one("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(row["value"]) if row else 0

    def _migrate(self) -> None:
        with self.transaction():
            if not self.db["meta"].exists():
                self.db["meta"].create({"key": str, "value": str}, pk="key")
            current = self.schema_version
            if current > SCHEMA_VERSION:
                raise RuntimeError(f"store {self.path} has schema {current}, newer than this redline "
                                   f"({SCHEMA_VERSION}); upgrade redline")
            for number in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[number - 1](self.db)
                self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                                (str(number),))

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    def ping(self) -> bool:
        return self._one("SELECT 1 AS ok")["ok"] == 1

    # -- users ------------------------------------------------------------------------------------

    def user_id(self, tenant: str, name: str, *, create: bool = True) -> int:
        """The id of ``name`` in ``tenant``; created on first sight unless ``create=False``."""
        row = self._one("SELECT id FROM users WHERE tenant = ? AND name = ?", (tenant, name))
        if row:
            return row["id"]
        if not create:
            raise NotFound(f"unknown user {name!r}")
        with self.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO users (tenant, name, created_at, version) VALUES (?, ?, ?, 0)",
                         (tenant, name, now_iso()))
        return self._one("SELECT id FROM users WHERE tenant = ? AND name = ?", (tenant, name))["id"]

    def user(self, user_id: int) -> dict:
        row = self._one("SELECT * FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise NotFound(f"unknown user id {user_id}")
        return row

    def user_version(self, user_id: int) -> int:
        row = self._one("SELECT version FROM users WHERE id = ?", (user_id,))
        return row["version"] if row else -1

    def _bump(self, conn: sqlite3.Connection, user_id: int) -> None:
        conn.execute("UPDATE users SET version = version + 1 WHERE id = ?", (user_id,))

    def delete_user(self, user_id: int) -> dict[str, int]:
        """Hard delete: every row that belongs to the user. Returns the rows removed per table."""
        removed: dict[str, int] = {}
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM interactions WHERE user_id = ?", (user_id,))]
            marks = ",".join("?" * len(ids))
            removed["jobs"] = conn.execute(
                f"DELETE FROM jobs WHERE interaction_id IN ({marks})", ids).rowcount if ids else 0
            for table in ("edits", "preferences", "pairs", "router_states", "aggregations"):
                removed[table] = conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,)).rowcount
            removed["interactions"] = conn.execute("DELETE FROM interactions WHERE user_id = ?",
                                                   (user_id,)).rowcount
            removed["users"] = conn.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount
        return removed

    # -- interactions -----------------------------------------------------------------------------

    def add_interaction(self, user_id: int, *, task: str, context: str, context_vector: np.ndarray,
                        prompt: Any, draft: str, preference_used: str | None,
                        preference_ids: list[int], neighbours: list[dict], candidates: list[dict],
                        strategy: str, model: str, tokens_in: int, tokens_out: int,
                        timings: dict[str, float]) -> str:
        interaction_id = uuid.uuid4().hex
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO interactions (id, user_id, task, context, context_vector, prompt, draft,"
                " preference_used, preference_ids, neighbours, candidates, strategy, model, tokens_in,"
                " tokens_out, timings, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (interaction_id, user_id, task, context, vector_to_blob(context_vector),
                 json.dumps(prompt), draft, preference_used, json.dumps(preference_ids),
                 json.dumps(neighbours), json.dumps(candidates), strategy, model, tokens_in,
                 tokens_out, json.dumps(timings), now_iso()))
        return interaction_id

    def interaction(self, interaction_id: str, *, tenant: str | None = None) -> dict:
        """One interaction, decoded; ``NotFound`` if unknown or (with ``tenant``) another tenant's."""
        row = self._one("SELECT i.*, u.tenant AS tenant, u.name AS user FROM interactions i"
                        " JOIN users u ON u.id = i.user_id WHERE i.id = ?", (interaction_id,))
        if row is None or (tenant is not None and row["tenant"] != tenant):
            raise NotFound(f"unknown interaction id {interaction_id!r}")
        for key in ("prompt", "preference_ids", "neighbours", "candidates", "timings"):
            row[key] = json.loads(row[key]) if row[key] else None
        row["context_vector"] = blob_to_vector(row["context_vector"])
        return row

    def interactions(self, user_id: int, *, limit: int = 100) -> list[dict]:
        return self._query("SELECT id, task, draft, preference_used, created_at FROM interactions"
                           " WHERE user_id = ? ORDER BY created_at DESC LIMIT ?", (user_id, limit))

    # -- edits and learning -----------------------------------------------------------------------

    def submit_edit(self, interaction_id: str, edited_text: str, *, cost: int, is_edit: bool,
                    job_kind: str = "learn") -> tuple[dict, bool]:
        """Durably record the edit of an interaction and queue its learning job, atomically.

        Returns ``(edit_row, created)``. Submitting the same text again returns the stored row with
        ``created=False``; a different text for an already edited interaction raises ``Conflict``.
        """
        with self.transaction() as conn:
            row = conn.execute("SELECT user_id FROM interactions WHERE id = ?", (interaction_id,)).fetchone()
            if row is None:
                raise NotFound(f"unknown interaction id {interaction_id!r}")
            user_id = row[0]
            existing = self._one("SELECT * FROM edits WHERE interaction_id = ?", (interaction_id,))
            if existing is not None:
                if existing["edited_text"] != edited_text:
                    raise Conflict(f"interaction {interaction_id} already has a different edit")
                return existing, False
            stamp = now_iso()
            conn.execute("INSERT INTO edits (interaction_id, user_id, edited_text, cost, is_edit, created_at)"
                         " VALUES (?,?,?,?,?,?)", (interaction_id, user_id, edited_text, cost,
                                                   int(is_edit), stamp))
            conn.execute("INSERT INTO jobs (kind, interaction_id, status, attempts, created_at, updated_at)"
                         " VALUES (?, ?, 'pending', 0, ?, ?)", (job_kind, interaction_id, stamp, stamp))
            return self._one("SELECT * FROM edits WHERE interaction_id = ?", (interaction_id,)), True

    def edit(self, interaction_id: str) -> dict | None:
        return self._one("SELECT * FROM edits WHERE interaction_id = ?", (interaction_id,))

    def complete_learning(self, interaction_id: str, *, preference: dict | None,
                          pair: dict | None, router_state: dict | None = None) -> int | None:
        """Apply one learning step, exactly once, in one transaction.

        ``preference``: ``{"text", "kind", "context_vector"}`` or None; ``pair``: ``{"context",
        "chosen", "rejected"}`` or None; ``router_state``: ``{"weights", "steps"}`` or None.
        Returns the new preference id, or None. If the edit was already learned nothing is written
        and ``Conflict`` is raised.
        """
        with self.transaction() as conn:
            row = conn.execute("SELECT user_id, learned_at FROM edits WHERE interaction_id = ?",
                               (interaction_id,)).fetchone()
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
                    " created_at, updated_at, user_edited) VALUES (?,?,?,?,?,?,?,0)",
                    (user_id, preference["text"], preference["kind"],
                     vector_to_blob(preference["context_vector"]), interaction_id, stamp, stamp))
                preference_id = cur.lastrowid
            if pair is not None:
                conn.execute("INSERT INTO pairs (user_id, interaction_id, context, chosen, rejected, source,"
                             " created_at) VALUES (?,?,?,?,?, 'edit', ?)",
                             (user_id, interaction_id, pair["context"], pair["chosen"], pair["rejected"], stamp))
            if router_state is not None:
                self._put_router_state(conn, user_id, router_state)
            conn.execute("UPDATE edits SET learned_at = ?, preference_id = ? WHERE interaction_id = ?",
                         (stamp, preference_id, interaction_id))
            conn.execute("UPDATE jobs SET status = 'done', updated_at = ? WHERE interaction_id = ?"
                         " AND kind = 'learn'", (stamp, interaction_id))
            self._bump(conn, user_id)
        return preference_id

    # -- jobs -------------------------------------------------------------------------------------

    def pending_jobs(self, *, limit: int = 100) -> list[dict]:
        """Jobs not yet done, oldest first; 'running' ones are included (a crash may have left them)."""
        return self._query("SELECT * FROM jobs WHERE status IN ('pending', 'running') ORDER BY id LIMIT ?",
                           (limit,))

    def mark_job(self, job_id: int, status: str, *, error: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE jobs SET status = ?, error = ?, attempts = attempts + (? = 'running'),"
                         " updated_at = ? WHERE id = ?", (status, error, status, now_iso(), job_id))

    def job_counts(self) -> dict[str, int]:
        return {r["status"]: r["n"] for r in
                self._query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")}

    # -- preferences ------------------------------------------------------------------------------

    def preference_vectors(self, user_id: int) -> tuple[list[int], np.ndarray]:
        rows = self._query("SELECT id, context_vector FROM preferences WHERE user_id = ? ORDER BY id",
                           (user_id,))
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [r["id"] for r in rows], np.stack([blob_to_vector(r["context_vector"]) for r in rows])

    def preferences_by_id(self, ids: list[int]) -> dict[int, dict]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._query(f"SELECT id, user_id, text, kind, interaction_id, created_at, updated_at,"
                           f" user_edited FROM preferences WHERE id IN ({marks})", tuple(ids))
        return {r["id"]: r for r in rows}

    def preferences(self, user_id: int, *, limit: int = 50, offset: int = 0) -> list[dict]:
        """The user's preferences, newest first, each with the interaction and edit that taught it."""
        return self._query(
            "SELECT p.id, p.text, p.kind, p.interaction_id, p.created_at, p.updated_at, p.user_edited,"
            " i.context, i.task, i.draft, e.edited_text, e.cost"
            " FROM preferences p LEFT JOIN interactions i ON i.id = p.interaction_id"
            " LEFT JOIN edits e ON e.interaction_id = p.interaction_id"
            " WHERE p.user_id = ? ORDER BY p.id DESC LIMIT ? OFFSET ?", (user_id, limit, offset))

    def count_preferences(self, user_id: int) -> int:
        return self._one("SELECT COUNT(*) AS n FROM preferences WHERE user_id = ?", (user_id,))["n"]

    def update_preference(self, user_id: int, preference_id: int, text: str) -> dict:
        with self.transaction() as conn:
            cur = conn.execute("UPDATE preferences SET text = ?, user_edited = 1, updated_at = ?"
                               " WHERE id = ? AND user_id = ?", (text, now_iso(), preference_id, user_id))
            if cur.rowcount == 0:
                raise NotFound(f"unknown preference id {preference_id}")
            self._drop_aggregations(conn, user_id)
            self._bump(conn, user_id)
        return self.preferences_by_id([preference_id])[preference_id]

    def delete_preference(self, user_id: int, preference_id: int) -> None:
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM preferences WHERE id = ? AND user_id = ?", (preference_id, user_id))
            if cur.rowcount == 0:
                raise NotFound(f"unknown preference id {preference_id}")
            conn.execute("UPDATE edits SET preference_id = NULL WHERE preference_id = ?", (preference_id,))
            self._drop_aggregations(conn, user_id)
            self._bump(conn, user_id)

    # -- aggregation cache ------------------------------------------------------------------------

    # Each row belongs to the user whose preferences it combines: only that user reads it, and it goes
    # with the user's hard delete and with any change to the user's preferences (a deleted or corrected
    # preference must not live on inside a cached aggregate).

    def cached_aggregation(self, user_id: int, key: str) -> str | None:
        row = self._one("SELECT text FROM aggregations WHERE key = ? AND user_id = ?", (key, user_id))
        return row["text"] if row else None

    def cache_aggregation(self, user_id: int, key: str, text: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO aggregations (key, user_id, text, created_at) VALUES (?,?,?,?)",
                         (key, user_id, text, now_iso()))

    def _drop_aggregations(self, conn: sqlite3.Connection, user_id: int) -> None:
        conn.execute("DELETE FROM aggregations WHERE user_id = ?", (user_id,))

    # -- pairs and routing state ------------------------------------------------------------------

    def pairs(self, *, user_id: int | None = None, since_id: int = 0) -> list[dict]:
        if user_id is None:
            return self._query("SELECT * FROM pairs WHERE id > ? ORDER BY id", (since_id,))
        return self._query("SELECT * FROM pairs WHERE user_id = ? AND id > ? ORDER BY id", (user_id, since_id))

    def count_pairs(self, *, since_id: int = 0) -> int:
        return self._one("SELECT COUNT(*) AS n FROM pairs WHERE id > ?", (since_id,))["n"]

    def add_pairs(self, pairs: list[dict], *, source: str = "file") -> int:
        stamp = now_iso()
        with self.transaction() as conn:
            conn.executemany("INSERT INTO pairs (user_id, interaction_id, context, chosen, rejected, source,"
                             " created_at) VALUES (?,?,?,?,?,?,?)",
                             [(p.get("user_id"), p.get("interaction_id"), p["context"], p["chosen"],
                               p["rejected"], source, stamp) for p in pairs])
        return len(pairs)

    def router_state(self, user_id: int) -> dict | None:
        row = self._one("SELECT * FROM router_states WHERE user_id = ?", (user_id,))
        if row:
            row["weights"] = json.loads(row["weights"])
        return row

    def _put_router_state(self, conn: sqlite3.Connection, user_id: int, state: dict) -> None:
        conn.execute("INSERT OR REPLACE INTO router_states (user_id, weights, steps, updated_at) VALUES (?,?,?,?)",
                     (user_id, json.dumps(list(map(float, state["weights"]))), int(state["steps"]), now_iso()))

    def put_router_state(self, user_id: int, state: dict) -> None:
        with self.transaction() as conn:
            self._put_router_state(conn, user_id, state)

    # -- stats and export -------------------------------------------------------------------------

    def edit_costs(self, user_id: int) -> list[int]:
        """Edit costs of the user's edited interactions, oldest first."""
        return [r["cost"] for r in self._query(
            "SELECT cost FROM edits WHERE user_id = ? ORDER BY created_at, rowid", (user_id,))]

    def export_user(self, user_id: int) -> dict:
        user = self.user(user_id)
        interactions = self._query("SELECT * FROM interactions WHERE user_id = ? ORDER BY created_at", (user_id,))
        for row in interactions:
            row.pop("context_vector", None)
            for key in ("prompt", "preference_ids", "neighbours", "candidates", "timings"):
                row[key] = json.loads(row[key]) if row[key] else None
        prefs = self._query("SELECT id, text, kind, interaction_id, created_at, updated_at, user_edited"
                            " FROM preferences WHERE user_id = ? ORDER BY id", (user_id,))
        return {
            "user": {"name": user["name"], "tenant": user["tenant"], "created_at": user["created_at"]},
            "interactions": interactions,
            "edits": self._query("SELECT * FROM edits WHERE user_id = ? ORDER BY created_at", (user_id,)),
            "preferences": prefs,
            "pairs": self.pairs(user_id=user_id),
            "router_state": self.router_state(user_id),
            "aggregations": self._query("SELECT text, created_at FROM aggregations WHERE user_id = ?"
                                        " ORDER BY created_at", (user_id,)),
        }

    def counts(self) -> dict[str, int]:
        return {t: self.db[t].count for t in ("users", "interactions", "edits", "preferences", "pairs", "jobs")}

    # -- API keys (only sha256 hashes are stored) ---------------------------------------------------

    @staticmethod
    def hash_api_key(key: str) -> str:
        import hashlib

        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def create_api_key(self, tenant: str, name: str = "") -> tuple[str, dict]:
        """A new random key bound to ``tenant``; returns ``(key, row)``. The key itself is not stored."""
        import secrets

        key = "rl-" + secrets.token_urlsafe(32)
        with self.transaction() as conn:
            cur = conn.execute("INSERT INTO api_keys (tenant, name, key_hash, prefix, created_at) VALUES (?,?,?,?,?)",
                               (tenant, name, self.hash_api_key(key), key[:10], now_iso()))
        return key, self._one("SELECT id, tenant, name, prefix, created_at, revoked_at FROM api_keys WHERE id = ?",
                              (cur.lastrowid,))

    def api_key_tenant(self, key: str) -> str | None:
        """The tenant of a valid, unrevoked key, else None."""
        row = self._one("SELECT tenant FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                        (self.hash_api_key(key),))
        return row["tenant"] if row else None

    def api_keys(self, *, tenant: str | None = None) -> list[dict]:
        sql = "SELECT id, tenant, name, prefix, created_at, revoked_at FROM api_keys"
        if tenant is None:
            return self._query(sql + " ORDER BY id")
        return self._query(sql + " WHERE tenant = ? ORDER BY id", (tenant,))

    def revoke_api_key(self, key_id: int) -> dict:
        with self.transaction() as conn:
            cur = conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                               (now_iso(), key_id))
            if cur.rowcount == 0:
                raise NotFound(f"no active API key with id {key_id}")
        return self._one("SELECT id, tenant, name, prefix, created_at, revoked_at FROM api_keys WHERE id = ?",
                         (key_id,))

    def count_active_api_keys(self) -> int:
        return self._one("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL")["n"]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (for tests and the worker)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
