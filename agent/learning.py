"""The learn side of ``Agent``: accept an edit durably, learn from it exactly once (in the background through
the job queue, or at once), and retrain the shared reward heads."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np

from redline.policies import read_pairs_jsonl, update_state
from redline.policies.training import EmbeddingCache, train_reward_model
from redline.store import Conflict, NotFound

from .errors import EditConflict, InvalidInput, UnknownInteraction
from .jobs import JobOutcome, JobRunner
from .types import EditReceipt, LearnResult, validate_user

__all__ = ["Learning"]
log = logging.getLogger(__name__)


def _fallback_preference(draft: str, edited: str) -> str:
    """Used only when neither the LLM nor the edit analysis named anything: a coarse description."""
    a, b = len(draft.split()), len(edited.split())
    if b < 0.8 * a:
        return "shorter, more concise text"
    if b > 1.25 * a:
        return "longer, more detailed text"
    return "reworded in the user's own words"


class Learning:
    """The learn side of ``Agent`` (which provides the store, cipher, rewards and parts it uses)."""

    def _interaction(self, interaction_id: str, tenant: str | None) -> dict:
        try:
            return self.store.interaction(interaction_id, tenant=tenant)
        except NotFound as exc:
            raise UnknownInteraction(f"unknown interaction id {interaction_id!r}") from exc

    def submit_edit(self, interaction_id: str, edited_text: str, *, tenant: str | None = None) -> EditReceipt:
        """Durably accept the user's kept text for an interaction (learning happens in ``process_edit``).

        The same text twice is accepted once; a different text afterwards raises ``EditConflict``.
        """
        self._check_text(edited_text, "edited text")
        interaction = self._interaction(interaction_id, tenant)
        cost = self.edit_cost(interaction["draft"], edited_text)
        try:
            row, created = self.store.submit_edit(interaction_id, edited_text, cost=cost,
                                                  is_edit=self.edit_cost.is_edit(cost))
        except Conflict as exc:
            raise EditConflict(f"interaction {interaction_id} already has a different edit") from exc
        except NotFound as exc:  # deleted meanwhile
            raise UnknownInteraction(f"unknown interaction id {interaction_id!r}") from exc
        return EditReceipt(interaction_id, row["cost"], bool(row["is_edit"]), created)

    def process_edit(self, interaction_id: str) -> LearnResult:
        """Learn from the stored edit of ``interaction_id``, exactly once.

        Edited (cost > δ): infer a preference from (context, draft, edit) and store it with the context
        vector, plus the pair (edit ≻ draft). Not edited: store the preference that was used, if any. Either
        way (with rules on): the evidence for the user's edit rules, from the draft as generated (before rules
        changed it) to the kept text, newly mined rules counted over the user's recent edits too. All of it is
        written in one transaction.
        """
        interaction = self._interaction(interaction_id, None)
        edit = self.store.edit(interaction_id)
        if edit is None:
            raise UnknownInteraction(f"interaction {interaction_id!r} has no edit to learn from")
        base = dict(interaction_id=interaction_id, cost=edit["cost"], is_edit=bool(edit["is_edit"]))
        if edit["learned_at"] is not None:
            pref = self.store.preferences_by_id([edit["preference_id"]]).get(edit["preference_id"]) \
                if edit["preference_id"] else None
            return LearnResult(**base, preference=pref["text"] if pref else None, preference_id=edit["preference_id"],
                               kind=pref["kind"] if pref else None, already_learned=True)
        tokens_in = tokens_out = 0
        pair = inferred_by = None
        if edit["is_edit"]:
            inference = self.cipher.infer(
                self.generator, task=interaction["task"], context=interaction["context"],
                draft=interaction["draft"], edited=edit["edited_text"])
            tokens_in, tokens_out, inferred_by = inference.prompt_tokens, inference.completion_tokens, inference.source
            text = inference.text or _fallback_preference(interaction["draft"], edit["edited_text"])
            kind = "inferred"
            pair = {"context": interaction["context"], "chosen": edit["edited_text"], "rejected": interaction["draft"]}
        else:
            text, kind = interaction["preference_used"], "accepted"
        preference = {"text": text, "kind": kind, "context_vector": interaction["context_vector"]} if text else None
        router_state = self._routing_step(interaction, pair) if pair is not None else None
        rules = self.rulebook.evidence(interaction["user_id"], interaction_id,
                                       interaction["raw_draft"] or interaction["draft"],
                                       edit["edited_text"]) if self.settings.rules else None
        try:
            preference_id = self.store.complete_learning(interaction_id, preference=preference, pair=pair,
                                                         router_state=router_state, rules=rules)
        except Conflict:  # learned concurrently by another worker: that one counts
            return self.process_edit(interaction_id)
        log.info("learned interaction=%s cost=%d kind=%s %s", interaction_id, edit["cost"], kind,
                 self._texts_for_log(preference=text))
        return LearnResult(**base, preference=text if preference else None, preference_id=preference_id,
                           kind=kind if preference else None, tokens_in=tokens_in, tokens_out=tokens_out,
                           inferred_by=inferred_by)

    def learn(self, interaction_id: str, edited_text: str, *, tenant: str | None = None) -> LearnResult:
        """``submit_edit`` then ``process_edit``: the synchronous path (CLI, evaluation harness)."""
        self.submit_edit(interaction_id, edited_text, tenant=tenant)
        return self.process_edit(interaction_id)

    def run_jobs(self, *, limit: int | None = None, stopping: Callable[[], bool] = lambda: False,
                 context: Callable[[dict], ContextManager] | None = None,
                 on_outcome: Callable[[JobOutcome], None] | None = None) -> list[JobOutcome]:
        """Learn queued edits, oldest first, with the one failure rule of ``JobRunner`` (the server's worker
        calls this); stops early when a job must wait (its outcome is then the last)."""
        runner = JobRunner(self.store.jobs, self.process_edit, context=context, on_outcome=on_outcome)
        return runner.drain(limit=limit, stopping=stopping)

    def process_pending(self, *, limit: int = 100) -> int:
        """Learn every accepted edit not yet learned (recovery after a crash); returns how many. A job that
        must wait (the generator is down, an unexpected error) stays queued and its error is raised."""
        outcomes = self.run_jobs(limit=limit)
        if outcomes and outcomes[-1].requeued:
            raise outcomes[-1].error
        return sum(o.outcome == "learned" for o in outcomes)

    def _routing_step(self, interaction: dict, pair: dict) -> dict | None:
        """The user's routing state after one Hedge step on (kept text ≻ draft); None without reward heads."""
        model = self.rewards.current()
        if model is None:
            return None
        vectors = self._encode([pair["chosen"], pair["rejected"]])
        context = np.asarray(interaction["context_vector"], dtype=np.float32)
        phi = self.reward_features.transform(context, vectors, [pair["chosen"], pair["rejected"]])
        losses = model.head_losses(phi[:1], phi[1:])[0]
        return update_state(self.store.router_state(interaction["user_id"]), losses, tau=self.settings.reward_tau)

    # -- reward heads -----------------------------------------------------------------------------

    def maintenance(self) -> dict | None:
        """Periodic background work; the server's worker calls it between learning jobs.

        Retrains the shared reward heads once ``reward_retrain_every`` new pairs arrived; returns the training's
        summary (see ``train_rewards``), or None when nothing was due.
        """
        return self.train_rewards()

    def train_rewards(self, *, force: bool = False, n_heads: int | None = None, seed: int | None = None
                      ) -> dict | None:
        """Retrain the reward heads on every stored pair, publish the checkpoint atomically, and replay each
        user's routing state under the new heads. Without ``force`` only when enough new pairs arrived;
        returns a summary, or None when nothing was done."""
        with self._train_lock:
            info = self.rewards.current_info() or {}
            new = self.store.count_pairs(since_id=info.get("last_pair_id", 0))
            if not force and new < self.settings.reward_retrain_every:
                return None
            pairs = self.store.pairs()
            if not pairs:
                return None
            clock = time.perf_counter()
            cache = EmbeddingCache(self._encode, self.settings.rewards_dir / "embeddings.npz")
            k = n_heads or self.settings.reward_heads
            trained = train_reward_model([{**p, "user": p["user_id"]} for p in pairs], cache, n_heads=k,
                                         seed=self.settings.reward_seed if seed is None else seed,
                                         tau=self.settings.reward_tau, features=self.reward_features)
            cache.save()
            meta = {"last_pair_id": max(p["id"] for p in pairs), "pairs": len(pairs), "heads": k,
                    "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            name = self.rewards.publish(trained.model, meta)
            for user_id, state in trained.routing.items():
                self.store.put_router_state(user_id, state)
            summary = {"checkpoint": name, **meta, "new_pairs": new, "users_routed": len(trained.routing),
                       "loss": round(trained.model.loss_, 4), "seconds": round(time.perf_counter() - clock, 2)}
            log.info("reward heads retrained %s", summary)
            return summary

    def import_pairs_file(self, path: str | Path, *, tenant: str = "default") -> int:
        """``import_pairs`` from a JSONL file (``policies.read_pairs_jsonl``); a bad line is ``InvalidInput``."""
        try:
            pairs = read_pairs_jsonl(path)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(str(exc)) from exc
        return self.import_pairs(pairs, tenant=tenant)

    def import_pairs(self, pairs: Sequence[dict], *, tenant: str = "default") -> int:
        """Add preference pairs ``{"context", "chosen", "rejected", "user"?}`` to the pair log; returns how many."""
        rows = []
        for p in pairs:
            user = p.get("user")
            rows.append({**p, "user_id": self.store.user_id(tenant, validate_user(user)) if user else None})
        return self.store.add_pairs(rows, source="file")

