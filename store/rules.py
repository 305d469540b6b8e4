"""A user's edit rules and the evidence behind them: one row per rule, unique on (user, key), and one
observation per (rule, interaction) saying whether that edit supported or contradicted the rule.

Support and contradictions on a rule row are always recounted from its observations inside the writing
transaction, so two learners never lose each other's counts and an edit counts at most once per rule.
What a rule is (kind, parameters, text) is decided by the agent; this module only stores it.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import numpy as np

from ._sqlite import SQLite, blob_to_vector, now_iso
from .errors import Conflict, NotFound

__all__ = ["Rules", "UNCHANGED"]

UNCHANGED = object()  # ``update(enabled=UNCHANGED)`` leaves the user's override as it is

_COLUMNS = ("id, user_id, key, kind, params, text, origin, enabled, support, contradictions, first_seen, last_seen,"
            " created_at, updated_at")


def _decode(row: dict) -> dict:
    row["params"] = json.loads(row["params"]) if row["params"] else {}
    row["enabled"] = None if row["enabled"] is None else bool(row["enabled"])
    return row


def _marks(values: list) -> str:
    return ",".join("?" * len(values))


class Rules:
    """``store.rules``: read, record evidence for, change and remove a user's rules."""

    def __init__(self, sql: SQLite):
        self._sql = sql

    # -- reading ----------------------------------------------------------------------------------

    def list(self, user_id: int) -> list[dict]:
        """The user's rules, oldest first, ``params`` decoded and ``enabled`` None/True/False."""
        return [_decode(r) for r in self._sql.query(f"SELECT {_COLUMNS} FROM rules WHERE user_id = ? ORDER BY id",
                                                    (user_id,))]

    def get(self, user_id: int, rule_id: int) -> dict:
        """One rule of the user; ``NotFound`` when unknown or another user's."""
        row = self._sql.one(f"SELECT {_COLUMNS} FROM rules WHERE id = ? AND user_id = ?", (rule_id, user_id))
        if row is None:
            raise NotFound(f"unknown rule id {rule_id}")
        return _decode(row)

    def taught_by(self, user_id: int) -> dict[int, list[str]]:
        """``{rule_id: [interaction ids whose edit supported it, newest first]}``: the provenance."""
        rows = self._sql.query(
            "SELECT o.rule_id, o.interaction_id FROM rule_observations o JOIN rules r ON r.id = o.rule_id"
            " LEFT JOIN edits e ON e.interaction_id = o.interaction_id"
            " WHERE r.user_id = ? AND o.supported = 1 ORDER BY e.created_at DESC, e.rowid DESC", (user_id,))
        out: dict[int, list[str]] = {}
        for r in rows:
            out.setdefault(r["rule_id"], []).append(r["interaction_id"])
        return out

    def counts_over(self, user_id: int, interaction_ids: Iterable[str]) -> dict[int, tuple[int, int]]:
        """``{rule_id: (support, contradictions)}`` counted over these interactions only (the nearest contexts)."""
        ids = list(dict.fromkeys(i for i in interaction_ids if i))
        if not ids:
            return {}
        rows = self._sql.query(
            "SELECT o.rule_id, SUM(o.supported) AS support, SUM(1 - o.supported) AS contradictions"
            " FROM rule_observations o JOIN rules r ON r.id = o.rule_id"
            f" WHERE r.user_id = ? AND o.interaction_id IN ({_marks(ids)}) GROUP BY o.rule_id", (user_id, *ids))
        return {r["rule_id"]: (int(r["support"]), int(r["contradictions"])) for r in rows}

    def observed_contexts(self, user_id: int, rule_ids: Iterable[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{rule_id: (context vectors, supported)}`` over the edits that gave each rule its chance: the rows of the
        first array are those interactions' context vectors, the second says whether the user made the fix there."""
        ids = list(dict.fromkeys(rule_ids))
        if not ids:
            return {}
        rows = self._sql.query(
            "SELECT o.rule_id, o.supported, i.context_vector FROM rule_observations o JOIN rules r ON r.id = o.rule_id"
            " JOIN interactions i ON i.id = o.interaction_id"
            f" WHERE r.user_id = ? AND o.rule_id IN ({_marks(ids)}) AND i.context_vector IS NOT NULL"
            " ORDER BY o.rule_id, o.interaction_id", (user_id, *ids))
        by_rule: dict[int, tuple[list, list]] = {}
        for r in rows:
            vectors, made = by_rule.setdefault(r["rule_id"], ([], []))
            vectors.append(blob_to_vector(r["context_vector"]))
            made.append(bool(r["supported"]))
        return {rid: (np.stack(v), np.array(m, dtype=bool)) for rid, (v, m) in by_rule.items()}

    def history(self, user_id: int, *, limit: int) -> list[tuple[str, str, str]]:
        """The user's last ``limit`` learned edits, oldest first, as ``(interaction_id, draft before rules,
        kept text)``: what a newly mined or rewritten rule is counted over."""
        rows = self._sql.query(
            "SELECT i.id, COALESCE(i.raw_draft, i.draft) AS draft, e.edited_text FROM edits e"
            " JOIN interactions i ON i.id = e.interaction_id WHERE e.user_id = ? AND e.learned_at IS NOT NULL"
            " ORDER BY e.created_at DESC, e.rowid DESC LIMIT ?", (user_id, limit))
        return [(r["id"], r["draft"], r["edited_text"]) for r in reversed(rows)]

    def export(self, user_id: int) -> list[dict]:
        """The user's rules, each with all its observations (``interaction_id``, ``supported``)."""
        rules = self.list(user_id)
        obs = self._sql.query(
            "SELECT o.rule_id, o.interaction_id, o.supported, o.created_at FROM rule_observations o"
            " JOIN rules r ON r.id = o.rule_id WHERE r.user_id = ? ORDER BY o.rule_id, o.created_at", (user_id,))
        by_rule: dict[int, list[dict]] = {}
        for o in obs:
            by_rule.setdefault(o.pop("rule_id"), []).append({**o, "supported": bool(o["supported"])})
        return [{**r, "observations": by_rule.get(r["id"], [])} for r in rules]

    # -- learning (inside the learning step's transaction) ----------------------------------------

    def record(self, conn: Any, user_id: int, *, new_rules: list[dict],
               observations: list[tuple[str, str, bool]], stamp: str) -> None:
        """Inside the caller's transaction: add ``new_rules`` (``{"key", "kind", "params", "text"}``, mined),
        add ``observations`` (``(rule key, interaction id, supported)``; one per rule and interaction, a repeat
        is ignored) and recount the rules they touch."""
        for rule in new_rules:
            conn.execute("INSERT INTO rules (user_id, key, kind, params, text, origin, enabled, support,"
                         " contradictions, created_at, updated_at) VALUES (?,?,?,?,?, 'mined', NULL, 0, 0, ?, ?)"
                         " ON CONFLICT DO NOTHING",
                         (user_id, rule["key"], rule["kind"], json.dumps(rule["params"], ensure_ascii=False),
                          rule["text"], stamp, stamp))
        keys = sorted({key for key, _, _ in observations})
        if not keys:
            return
        ids = {r[0]: r[1] for r in conn.execute(
            f"SELECT key, id FROM rules WHERE user_id = ? AND key IN ({_marks(keys)})", (user_id, *keys))}
        conn.executemany("INSERT INTO rule_observations (rule_id, interaction_id, supported, created_at)"
                         " VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                         [(ids[k], iid, int(ok), stamp) for k, iid, ok in observations if k in ids])
        self._recount(conn, list(ids.values()), stamp)

    def prune(self, conn: Any, user_id: int, *, recent: int, keep: str | None = None) -> int:
        """Inside the caller's transaction: forget mined rules with at most one supporting edit that none of
        the user's last ``recent`` edits (learned, or ``keep``, the one being learned) gave a chance to show
        again; most such candidates are one-off content edits. Rules the user changed or switched are kept."""
        recent_ids = [r[0] for r in conn.execute(
            "SELECT interaction_id FROM edits WHERE user_id = ? AND (learned_at IS NOT NULL OR interaction_id = ?)"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?", (user_id, keep, recent))]
        if len(recent_ids) < recent:
            return 0
        stale = [r[0] for r in conn.execute(
            "SELECT id FROM rules WHERE user_id = ? AND origin = 'mined' AND enabled IS NULL AND support <= 1"
            " AND id NOT IN (SELECT rule_id FROM rule_observations"
            f" WHERE interaction_id IN ({_marks(recent_ids)}))", (user_id, *recent_ids))]
        return self._delete(conn, stale)

    # -- the user's changes -----------------------------------------------------------------------

    def update(self, user_id: int, rule_id: int, *, enabled: object = UNCHANGED, rule: dict | None = None,
               observations: list[tuple[str, bool]] | None = None) -> dict:
        """Change a rule of the user: its override (``enabled`` None/True/False) and/or what it is (``rule``:
        ``{"key", "kind", "params", "text"}``, which makes it the user's own; its evidence is then replaced by
        ``observations``, ``(interaction id, supported)``). ``NotFound`` when unknown or another user's;
        ``Conflict`` when the user already has the rule it would become."""
        stamp = now_iso()
        with self._sql.transaction() as conn:
            self._sql.lock_users(conn, [user_id])
            self.get(user_id, rule_id)
            if enabled is not UNCHANGED:
                conn.execute("UPDATE rules SET enabled = ?, updated_at = ? WHERE id = ?",
                             (None if enabled is None else int(bool(enabled)), stamp, rule_id))
            if rule is not None:
                clash = conn.execute("SELECT id FROM rules WHERE user_id = ? AND key = ? AND id != ?",
                                     (user_id, rule["key"], rule_id)).fetchone()
                if clash:
                    raise Conflict(f"rule {clash[0]} already does this")
                params = json.dumps(rule["params"], ensure_ascii=False)
                conn.execute("UPDATE rules SET key = ?, kind = ?, params = ?, text = ?, origin = 'user',"
                             " updated_at = ? WHERE id = ?", (rule["key"], rule["kind"], params, rule["text"], stamp,
                                                              rule_id))
                conn.execute("DELETE FROM rule_observations WHERE rule_id = ?", (rule_id,))
                conn.executemany("INSERT INTO rule_observations (rule_id, interaction_id, supported, created_at)"
                                 " VALUES (?,?,?,?)", [(rule_id, iid, int(ok), stamp)
                                                       for iid, ok in observations or ()])
                self._recount(conn, [rule_id], stamp)
        return self.get(user_id, rule_id)

    def delete(self, user_id: int, rule_id: int) -> None:
        """Forget a rule of the user and its evidence; ``NotFound`` when unknown or another user's."""
        with self._sql.transaction() as conn:
            self._sql.lock_users(conn, [user_id])
            self.get(user_id, rule_id)
            self._delete(conn, [rule_id])
        self._sql.checkpoint()  # like a deleted preference: its text leaves the WAL too

    def delete_user(self, conn: Any, user_id: int) -> dict[str, int]:
        """Inside the caller's transaction (a hard delete): every rule of the user and every observation."""
        ids = [r[0] for r in conn.execute("SELECT id FROM rules WHERE user_id = ?", (user_id,))]
        observations = conn.execute(f"DELETE FROM rule_observations WHERE rule_id IN ({_marks(ids)})",
                                    ids).rowcount if ids else 0
        return {"rules": conn.execute("DELETE FROM rules WHERE user_id = ?", (user_id,)).rowcount,
                "rule_observations": observations}

    # -- plumbing ---------------------------------------------------------------------------------

    def _delete(self, conn: Any, rule_ids: list[int]) -> int:
        if not rule_ids:
            return 0
        conn.execute(f"DELETE FROM rule_observations WHERE rule_id IN ({_marks(rule_ids)})", rule_ids)
        return conn.execute(f"DELETE FROM rules WHERE id IN ({_marks(rule_ids)})", rule_ids).rowcount

    def _recount(self, conn: Any, rule_ids: list[int], stamp: str) -> None:
        """Support, contradictions and first/last seen (the dates of the edits that said something about
        the rule) from the observations."""
        conn.execute(
            "UPDATE rules SET"
            " support = (SELECT COUNT(*) FROM rule_observations o WHERE o.rule_id = rules.id AND o.supported = 1),"
            " contradictions = (SELECT COUNT(*) FROM rule_observations o WHERE o.rule_id = rules.id"
            "  AND o.supported = 0),"
            " first_seen = (SELECT MIN(e.created_at) FROM rule_observations o JOIN edits e"
            "  ON e.interaction_id = o.interaction_id WHERE o.rule_id = rules.id),"
            " last_seen = (SELECT MAX(e.created_at) FROM rule_observations o JOIN edits e"
            "  ON e.interaction_id = o.interaction_id WHERE o.rule_id = rules.id),"
            f" updated_at = ? WHERE id IN ({_marks(rule_ids)})", (stamp, *rule_ids))
