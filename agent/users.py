"""What a user (through their backend) can read and change of what redline learned: one interaction and its
learning status, the preferences and their stats, the edit rules, corrections and deletions, an export and a
hard delete."""

from __future__ import annotations

import numpy as np

from redline.retrieval import Embedder, IndexCache
from redline.store import NotFound, Store

from .config import Settings
from .errors import InvalidRule, UnknownPreference, UnknownUser, encode
from .learning import stored_interaction
from .reward_training import RewardTrainer
from .rulebook import UNCHANGED, Rulebook
from .types import check_control_chars, check_text, validate_user

__all__ = ["UserData"]


class UserData:
    """What a user can read and change, over the store: interactions, preferences, edit rules, export, hard delete.

    Built on the store and settings, the ``embedder`` (``nearest_edits``), the ``rulebook``, the ``reward_trainer``
    (the user's routing, read) and the process's ``index_cache`` (a hard delete drops the user's index).
    """

    def __init__(self, store: Store, settings: Settings, *, embedder: Embedder, rulebook: Rulebook,
                 reward_trainer: RewardTrainer, index_cache: IndexCache):
        self.store, self.settings, self.embedder = store, settings, embedder
        self.rulebook, self.reward_trainer, self.index_cache = rulebook, reward_trainer, index_cache

    def _user_id(self, user: str, tenant: str) -> int:
        validate_user(user)
        try:
            return self.store.user_id(tenant, user, create=False)
        except NotFound as exc:
            raise UnknownUser(f"unknown user {user!r}") from exc

    def interaction(self, interaction_id: str, *, tenant: str | None = None) -> dict:
        """One interaction as the user's backend sees it: the text generated, the user's edit (None before
        one arrived) and ``learning``: its ``status`` (awaiting_edit, pending, running, learned or parked),
        when it was learned, the preference stored from it (None when the edit taught none), and while it is not
        learned, the ``attempts`` made, the last one's ``error`` and when the next may run (``retry_at``: the end
        of a back-off; None for a parked job, retried when the generator answers again or on command)."""
        row = stored_interaction(self.store, interaction_id, tenant)
        edit = self.store.edit(interaction_id)
        learning = {"status": "awaiting_edit", "learned_at": None, "preference": None, "error": None,
                    "attempts": 0, "retry_at": None}
        if edit is not None:
            job = self.store.jobs.get(interaction_id) or {}
            stored = self.store.preferences_by_id([edit["preference_id"]]) if edit["preference_id"] else {}
            pref = stored.get(edit["preference_id"])
            learned = edit["learned_at"] is not None
            status = "learned" if learned else job.get("status", "pending")
            if status not in ("pending", "running", "parked", "learned"):
                status = "pending"  # a job done or dropped meanwhile: the edit's own row says what holds now
            learning = {"status": status, "learned_at": edit["learned_at"],
                        "preference": {"id": pref["id"], "text": pref["text"], "kind": pref["kind"]} if pref else None,
                        "error": None if learned else job.get("error"),
                        "attempts": job.get("attempts") or 0,
                        "retry_at": job.get("run_after") if status == "pending" and job.get("error") else None}
            edit = {"edited_text": edit["edited_text"], "cost": edit["cost"], "is_edit": bool(edit["is_edit"]),
                    "created_at": edit["created_at"]}
        return {"interaction_id": interaction_id, "user": row["user"], "task": row["task"], "text": row["draft"],
                "preference": row["preference_used"], "strategy": row["strategy"], "model": row["model"],
                "created_at": row["created_at"], "edit": edit, "learning": learning}

    def preferences(self, user: str, *, tenant: str = "default", limit: int = 50, offset: int = 0,
                    window: int = 10) -> dict:
        """What redline believes ``user`` prefers, newest first, with where each belief came from,
        and stats: edits, mean cost of the first and of the last ``window`` edits."""
        user_id = self._user_id(user, tenant)
        items = [_preference_item(row) for row in self.store.preferences(user_id, limit=limit, offset=offset)]
        costs = self.store.edit_costs(user_id)
        stats = {"edits": len(costs), "preferences": self.store.count_preferences(user_id),
                 "mean_cost_first": _mean(sum(costs[:window]), len(costs[:window])),
                 "mean_cost_last": _mean(sum(costs[-window:]), len(costs[-window:])), "window": window}
        routing = self.reward_trainer.describe(user_id)
        return {"user": user, "items": items, "stats": stats, "limit": limit, "offset": offset, "routing": routing,
                "rules": self.rulebook.describe(user_id)}

    def users(self, *, tenant: str = "default", limit: int = 100, offset: int = 0, window: int = 10) -> dict:
        """The tenant's users, most recently active first, each with ``edits``, ``preferences``,
        ``last_activity`` and the mean edit cost of their first and last ``window`` edits (as in
        ``preferences``' stats); ``total`` users in the tenant."""
        rows = self.store.user_summaries(tenant, window=window, limit=limit, offset=offset)
        users = [{"user": r["user"], "created_at": r["created_at"], "last_activity": r["last_activity"],
                  "edits": r["edits"], "preferences": r["preferences"],
                  "mean_cost_first": _mean(r["first_sum"], r["first_n"]),
                  "mean_cost_last": _mean(r["last_sum"], r["last_n"])} for r in rows]
        return {"users": users, "total": self.store.count_users(tenant), "limit": limit, "offset": offset,
                "window": window}

    def edit_history(self, user: str, *, tenant: str = "default") -> list[dict]:
        """The user's edits oldest first: ``created_at``, ``cost`` and ``is_edit`` (cost above δ) of each."""
        return self.store.edit_history(self._user_id(user, tenant))

    def update_preference(self, user: str, preference_id: int, text: str, *, tenant: str = "default") -> dict:
        """Correct a learned preference; returns it as ``preferences`` lists it."""
        check_text(text, "preference text", self.settings.max_text_chars)
        try:
            return _preference_item(self.store.update_preference(self._user_id(user, tenant), preference_id,
                                                                 text.strip()))
        except NotFound as exc:
            raise UnknownPreference(f"unknown preference id {preference_id}") from exc

    def delete_preference(self, user: str, preference_id: int, *, tenant: str = "default") -> None:
        try:
            self.store.delete_preference(self._user_id(user, tenant), preference_id)
        except NotFound as exc:
            raise UnknownPreference(f"unknown preference id {preference_id}") from exc

    def rules(self, user: str, *, tenant: str = "default") -> list[dict]:
        """The user's learned edit rules (``Rulebook.describe``): active ones first."""
        return self.rulebook.describe(self._user_id(user, tenant))

    def update_rule(self, user: str, rule_id: int, *, enabled: object = UNCHANGED, text: str | None = None,
                    tenant: str = "default") -> dict:
        """Turn a rule on or off (``enabled`` True/False; None: its evidence decides) and/or rewrite its text;
        ``UnknownRule`` for an id the user does not have, ``InvalidRule`` for text the rule cannot take."""
        if enabled is UNCHANGED and text is None:
            raise InvalidRule("nothing to change: give enabled and/or text")
        if isinstance(text, str):
            check_control_chars(text, "rule text")
        return self.rulebook.update(self._user_id(user, tenant), rule_id, enabled=enabled, text=text)

    def delete_rule(self, user: str, rule_id: int, *, tenant: str = "default") -> None:
        """Forget a rule and its evidence; ``UnknownRule`` for an id the user does not have."""
        self.rulebook.delete(self._user_id(user, tenant), rule_id)

    def export_user(self, user: str, *, tenant: str = "default") -> dict:
        return self.store.export_user(self._user_id(user, tenant))

    def delete_user(self, user: str, *, tenant: str = "default") -> dict:
        """Hard delete: the user's rows, at once, and this process's cached index (other processes' caches see the
        user gone on their next read). When the user had pairs, the same transaction queues a ``retrain`` job: a
        learner (``train_rewards``/``run_retrain_jobs``) retrains the shared reward without them and removes every
        older checkpoint, which was trained on them (with no pair left, every checkpoint)."""
        user_id = self._user_id(user, tenant)
        removed = self.store.delete_user(user_id)
        self.index_cache.drop(user_id)
        return removed

    def nearest_edits(self, user: str, context: str, k: int, *, tenant: str = "default") -> list[tuple[str, str]]:
        """The ``k`` past (draft, edited text) pairs of ``user`` whose contexts are nearest to ``context``,
        most similar first (edits above δ only); the ICL-edit baseline puts them in the prompt."""
        try:
            user_id = self.store.user_id(tenant, validate_user(user), create=False)
        except NotFound:
            return []
        rows = self.store.edited_drafts(user_id)
        if not rows or k < 1:
            return []
        vector = encode(self.embedder, [context])[0]
        sims = np.stack([r["context_vector"] for r in rows]) @ vector
        return [(rows[i]["draft"], rows[i]["edited_text"]) for i in np.argsort(-sims, kind="stable")[:k]]


def _preference_item(row: dict) -> dict:
    """A stored preference as the user reads it: the start of its context instead of all of it."""
    ctx = row.pop("context") or ""
    return {**row, "user_edited": bool(row["user_edited"]),
            "context_snippet": ctx[:200] + ("…" if len(ctx) > 200 else "")}


def _mean(total: int | None, count: int) -> float | None:
    """A mean edit cost as the API shows it (2 decimals), None over no edits."""
    return round(total / count, 2) if count else None
