"""Users: the id of a tenant's user (created on first sight), the version per-process caches check, the tenant's
list with activity and cost summaries, a user's export and hard delete, and the row counts of the whole store.

``UserRows`` is one part of ``SQLStore`` (``store.sql``): its methods are the ``Store``'s and run on the store's
adapter ``_sql`` (a hard delete also reaches ``jobs`` and ``rules``; the export reads through the other parts).
"""

from __future__ import annotations

import json
from typing import Any

from ._sqlite import now_iso
from .errors import NotFound
from .interactions import EDIT_COLUMNS, JSON_COLUMNS
from .jobs import Jobs
from .rules import Rules

__all__ = ["UserRows"]


class UserRows:
    """The users' part of ``SQLStore``."""

    _sql: Any
    jobs: Jobs
    rules: Rules

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
            for key in JSON_COLUMNS:
                row[key] = json.loads(row[key]) if row[key] else None
        prefs = self._sql.query("SELECT id, text, kind, interaction_id, created_at, updated_at, user_edited"
                            " FROM preferences WHERE user_id = ? ORDER BY id", (user_id,))
        return {
            "user": {"name": user["name"], "tenant": user["tenant"], "created_at": user["created_at"]},
            "interactions": interactions,
            "edits": self._sql.query(f"SELECT {EDIT_COLUMNS} FROM edits WHERE user_id = ? ORDER BY created_at, rowid",
                                     (user_id,)),
            "preferences": prefs,
            "pairs": self.pairs(user_id=user_id),
            "router_state": self.reward_state(user_id),  # the export's key since its first version: clients read it
            "aggregations": self._sql.query("SELECT text, created_at FROM aggregations WHERE user_id = ?"
                                        " ORDER BY created_at", (user_id,)),
            "rules": self.rules.export(user_id),
        }

    def counts(self) -> dict[str, int]:
        """Rows per table. Nothing in redline reads it: ``benchmarks/bench_api.py`` reports the seeded store with it
        (``store_rows``), and tests check what a step wrote."""
        return {t: self._sql.one(f"SELECT COUNT(*) AS n FROM {t}")["n"]
                for t in ("users", "interactions", "edits", "preferences", "pairs", "jobs", "rules",
                          "rule_observations")}

