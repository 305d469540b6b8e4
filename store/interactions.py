"""Interactions and their edits: a generation stored, an edit accepted durably with its learning job, and the
learning step that completes it (a preference, a pair, the user's reward state and rule evidence, in one
transaction); each user's edit history.

``InteractionRows`` is one part of ``SQLStore`` (``store.sql``): its methods are the ``Store``'s and run on the
store's adapter ``_sql``; a learning step also writes through ``jobs`` and ``rules``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np

from ._sqlite import blob_to_vector, now_iso, vector_to_blob
from .errors import Conflict, NotFound
from .jobs import Jobs
from .pairs import insert_pairs, put_reward_state
from .preferences import bump_version
from .rules import Rules

__all__ = ["InteractionRows", "EDIT_COLUMNS", "JSON_COLUMNS"]

# An edit's columns (PostgreSQL's edits also have an ``id``, their insertion order, where SQLite has its rowid).
EDIT_COLUMNS = "interaction_id, user_id, edited_text, cost, is_edit, created_at, learned_at, preference_id"
_EDIT_ROW = f"SELECT {EDIT_COLUMNS} FROM edits WHERE interaction_id = ?"
JSON_COLUMNS = ("prompt", "preference_ids", "neighbours", "candidates", "timings", "applied_rules")


class InteractionRows:
    """The interactions' and edits' part of ``SQLStore``."""

    _sql: Any
    jobs: Jobs
    rules: Rules

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
        for key in JSON_COLUMNS:
            row[key] = json.loads(row[key]) if row[key] else None
        row["context_vector"] = blob_to_vector(row["context_vector"])
        return row

    def submit_edit(self, interaction_id: str, edited_text: str, *, cost: int, is_edit: bool,
                    job_kind: str = "learn") -> tuple[dict, bool]:
        """Durably record the edit of an interaction and queue its learning job, atomically.

        Returns ``(edit_row, created)``. Submitting the same text again returns the stored row with
        ``created=False``; a different text for an already edited interaction raises ``Conflict``.
        """
        read = ("SELECT i.user_id AS owner, " + ", ".join(f"e.{c}" for c in EDIT_COLUMNS.split(", ")) +
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
            user_id, existing = row[0], dict(zip(EDIT_COLUMNS.split(", "), row[1:]))
            if existing["interaction_id"] is not None:
                if existing["edited_text"] != edited_text:
                    raise Conflict(f"interaction {interaction_id} already has a different edit")
                return existing, False
            stamp = now_iso()
            cur = conn.execute("INSERT INTO edits (interaction_id, user_id, edited_text, cost, is_edit, created_at)"
                               f" VALUES (?,?,?,?,?,?) RETURNING {EDIT_COLUMNS}",
                               (interaction_id, user_id, edited_text, cost, int(is_edit), stamp))
            created = dict(zip(EDIT_COLUMNS.split(", "), cur.fetchone()))
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
                          pair: dict | None, reward_state: dict | None = None, rules: dict | None = None) -> int | None:
        """Apply one learning step, exactly once, in one transaction.

        ``preference``: ``{"text", "kind", "context_vector"}`` or None; ``pair``: ``{"context", "chosen",
        "rejected"}`` plus optional ``"features"`` (array), ``"features_version"`` and ``"context_vector"``, or None;
        ``reward_state``: the user's reward state (a JSON-able dict) or None; ``rules``: the edit rules' evidence,
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
                insert_pairs(conn, [{**pair, "user_id": user_id, "interaction_id": interaction_id}],
                                   source="edit", stamp=stamp)
            if reward_state is not None:
                put_reward_state(conn, user_id, reward_state)
            if rules is not None:
                self.rules.record(conn, user_id, new_rules=rules["new_rules"], observations=rules["observations"],
                                  stamp=stamp)
                self.rules.prune(conn, user_id, recent=rules["prune_after"], keep=interaction_id)
            conn.execute("UPDATE edits SET learned_at = ?, preference_id = ? WHERE interaction_id = ?",
                         (stamp, preference_id, interaction_id))
            self.jobs.finish(conn, interaction_id, stamp=stamp)
            bump_version(conn, user_id)
        return preference_id

    def complete_learnings(self, writes: list[dict]) -> dict[str, int | None | Conflict | NotFound]:
        """Apply several learning steps in one transaction (one commit for the batch): each of ``writes`` is
        ``{"interaction_id", "preference", "pair", "reward_state", "rules"}`` as ``complete_learning`` takes them.
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
                        reward_state=w.get("reward_state"), rules=w.get("rules"))
                except (Conflict, NotFound) as exc:
                    out[w["interaction_id"]] = exc
        return out

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
