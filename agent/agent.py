"""The personalization loop: ``generate`` a response for a user, ``learn`` from the user's edit.

The API, the CLI and the evaluation harness all drive this one object.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from redline.policies import (RewardCheckpoints, RewardFeatures, batch_layout, describe_state, plan_candidates,
                      score_candidates, select, update_state)
from redline.policies.training import EmbeddingCache, train_reward_model
from redline.retrieval import Embedder, IndexCache
from redline.store import Conflict, NotFound, Store

from . import prompts
from .cipher import Cipher, Retrieved
from .config import Settings
from .editcost import EditCost
from .errors import (EditConflict, GeneratorUnavailable, InvalidInput, UnknownInteraction, UnknownPreference,
                     UnknownUser)
from .generators import GenerationParams, Generator, build_generator

__all__ = ["Agent", "GenerateOptions", "GenerateResult", "EditReceipt", "LearnResult", "validate_user"]
log = logging.getLogger(__name__)

USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+\-]{0,127}$")
STRATEGIES = ("greedy", "best_of_n", "rps")


def validate_user(user: str) -> str:
    if not isinstance(user, str) or not USER_ID.match(user):
        raise InvalidInput("user must be 1-128 characters: letters, digits and . _ @ : + - "
                           "(starting with a letter or digit)")
    return user


@dataclass
class GenerateOptions:
    """Per-call options; ``None`` means the configured default."""

    strategy: str = "greedy"
    n: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    history: Sequence[dict] = ()
    preference: str | None = None  # an explicit preference overrides retrieval (oracle/ablations)
    use_retrieval: bool = True


@dataclass
class GenerateResult:
    interaction_id: str
    user: str
    task: str
    text: str
    preference: str | None
    neighbours: list[dict]
    prompt: list[dict]
    candidates: list[dict]
    strategy: str
    model: str
    tokens_in: int
    tokens_out: int
    timings_ms: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EditReceipt:
    interaction_id: str
    cost: int
    is_edit: bool
    created: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LearnResult:
    interaction_id: str
    cost: int
    is_edit: bool
    preference: str | None
    preference_id: int | None
    kind: str | None
    already_learned: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _fallback_preference(draft: str, edited: str) -> str:
    """Used only when neither the LLM nor the edit analysis named anything: a coarse description."""
    a, b = len(draft.split()), len(edited.split())
    if b < 0.8 * a:
        return "shorter, more concise text"
    if b > 1.25 * a:
        return "longer, more detailed text"
    return "reworded in the user's own words"


class Agent:
    """``generate(user, context, task)`` and ``learn(interaction_id, edited_text)``.

    Heavy parts (embedder, generator) load on first use; pass them in to share or replace them.
    """

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None,
                 embedder: Embedder | None = None, generator: Generator | None = None):
        self.settings = settings or Settings()
        self.store = store or Store(self.settings.store_path)
        self.embedder = embedder or Embedder(self.settings.embedding_model)
        self._generator = generator
        self._generator_lock = threading.Lock()
        self.index_cache = IndexCache(self.settings.index_cache_users)
        self.cipher = Cipher(self.store, self.index_cache, k=self.settings.k)
        self.edit_cost = EditCost(self.settings.delta)
        self.rewards = RewardCheckpoints(self.settings.rewards_dir)
        self.reward_features = RewardFeatures()
        self._train_lock = threading.Lock()

    # -- parts ------------------------------------------------------------------------------------

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            with self._generator_lock:
                if self._generator is None:
                    try:
                        self._generator = build_generator(self.settings)
                    except (OSError, RuntimeError, ValueError) as exc:
                        raise GeneratorUnavailable(f"could not set up the generator: {exc}") from exc
        return self._generator

    def _check_text(self, text: str, what: str) -> str:
        if not isinstance(text, str):
            raise InvalidInput(f"{what} must be a string")
        if not text.strip():
            raise InvalidInput(f"{what} is empty")
        if len(text) > self.settings.max_text_chars:
            raise InvalidInput(f"{what} is {len(text)} characters; the limit is {self.settings.max_text_chars}")
        return text

    def _params(self, options: GenerateOptions, n: int = 1) -> GenerationParams:
        try:
            return GenerationParams(
                n=n, temperature=self.settings.temperature if options.temperature is None else options.temperature,
                max_tokens=options.max_tokens or self.settings.max_tokens,
                seed=self.settings.seed if options.seed is None else options.seed)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc

    # -- generate ---------------------------------------------------------------------------------

    def generate(self, user: str, context: str, task: str = "summarize", options: GenerateOptions | None = None,
                 *, tenant: str = "default") -> GenerateResult:
        """Personalized response for ``user`` on ``context``; stored as a new interaction."""
        options = options or GenerateOptions()
        validate_user(user)
        self._check_text(context, "context")
        if task not in prompts.TASKS:
            raise InvalidInput(f"unknown task {task!r}; choose one of: {', '.join(prompts.TASKS)}")
        if options.strategy not in STRATEGIES:
            raise InvalidInput(f"unknown strategy {options.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if options.n is not None and (not isinstance(options.n, int) or not 1 <= options.n <= 16):
            raise InvalidInput(f"n must be an integer in [1, 16], got {options.n!r}")
        params = self._params(options)
        generator = self.generator  # fail fast, before anything is stored
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = round((now - clock) * 1000, 2)
            clock = now

        user_id = self.store.user_id(tenant, user)
        vector = self.embedder.encode([context])[0]
        lap("embed_ms")
        retrieved: list[Retrieved] = []
        if options.preference is None and options.use_retrieval:
            retrieved = self.cipher.retrieve(user_id, vector)
        lap("retrieve_ms")
        tokens_in = tokens_out = 0
        if options.preference is not None:
            preference = options.preference or None
        else:
            agg = self.cipher.aggregate(user_id, retrieved, generator)
            preference, tokens_in, tokens_out = agg.text, agg.prompt_tokens, agg.completion_tokens
        lap("aggregate_ms")
        # Plan candidates; without reward heads or a routing state for this user, only the target prompt.
        model = self.rewards.current() if options.strategy != "greedy" else None
        routing = self.store.router_state(user_id) if model is not None else None
        strategy = options.strategy if routing is not None else "greedy"  # cold start: the target prompt only
        n = options.n or self.settings.reward_n
        plan = plan_candidates(strategy, preference,
                               [(f"neighbour:{r.preference_id}", r.preference) for r in retrieved], n)
        layout = batch_layout(plan)
        prompt_list = [prompts.task_prompt(task, context, pref, context_chars=self.settings.context_chars_in_prompt,
                                           history=options.history) for pref in layout.preferences]
        outs = generator.generate(prompt_list, self._params(options, layout.n) if layout.n > 1 else params)
        tokens_in += sum(o.prompt_tokens for o in outs)
        tokens_out += sum(o.completion_tokens for o in outs)
        lap("generate_ms")
        candidates = [{"text": outs[i].texts[j], "preference": item.preference, "source": item.source,
                       "score": None} for item, (i, j) in zip(plan, layout.slots)]
        best = 0
        if len(candidates) > 1:
            cand_vectors = self.embedder.encode([c["text"] for c in candidates])  # one pass for all candidates
            scored = score_candidates(model, self.reward_features, vector, cand_vectors,
                                      [c["text"] for c in candidates], routing["weights"])
            for c, win, reward in zip(candidates, scored["win_rates"], scored["scores"]):
                c["score"], c["reward"] = round(float(win), 6), round(float(reward), 6)
            best = select(scored["win_rates"])
            lap("score_ms")
        for i, c in enumerate(candidates):
            c["chosen"] = i == best
        text = candidates[best]["text"]
        prompt = prompt_list[layout.slots[best][0]]
        preference = candidates[best]["preference"]  # RPS may pick a neighbour's preference: that one was used
        neighbours = [r.to_dict() for r in retrieved]
        interaction_id = self.store.add_interaction(
            user_id, task=task, context=context, context_vector=vector, prompt=prompt, draft=text,
            preference_used=preference, preference_ids=[r.preference_id for r in retrieved], neighbours=neighbours,
            candidates=candidates, strategy=options.strategy, model=generator.model_name, tokens_in=tokens_in,
            tokens_out=tokens_out, timings=timings)
        lap("store_ms")
        log.info("generate user=%s interaction=%s neighbours=%d preference=%r %s", user, interaction_id,
                 len(retrieved), preference, timings)
        return GenerateResult(interaction_id, user, task, text, preference, neighbours, prompt, candidates,
                              options.strategy, generator.model_name, tokens_in, tokens_out, timings)

    # -- learn ------------------------------------------------------------------------------------

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
        return EditReceipt(interaction_id, row["cost"], bool(row["is_edit"]), created)

    def process_edit(self, interaction_id: str) -> LearnResult:
        """Learn from the stored edit of ``interaction_id``, exactly once.

        Edited (cost > δ): infer a preference from (context, draft, edit) and store it with the context
        vector, plus the pair (edit ≻ draft). Not edited: store the preference that was used, if any.
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
        pair = None
        if edit["is_edit"]:
            text, tokens_in, tokens_out = self.cipher.infer(
                self.generator, task=interaction["task"], context=interaction["context"],
                draft=interaction["draft"], edited=edit["edited_text"])
            text = text or _fallback_preference(interaction["draft"], edit["edited_text"])
            kind = "inferred"
            pair = {"context": interaction["context"], "chosen": edit["edited_text"], "rejected": interaction["draft"]}
        else:
            text, kind = interaction["preference_used"], "accepted"
        preference = {"text": text, "kind": kind, "context_vector": interaction["context_vector"]} if text else None
        router_state = self._routing_step(interaction, pair) if pair is not None else None
        try:
            preference_id = self.store.complete_learning(interaction_id, preference=preference, pair=pair,
                                                         router_state=router_state)
        except Conflict:  # learned concurrently by another worker: that one counts
            return self.process_edit(interaction_id)
        log.info("learned interaction=%s cost=%d kind=%s preference=%r", interaction_id, edit["cost"], kind, text)
        return LearnResult(**base, preference=text if preference else None, preference_id=preference_id,
                           kind=kind if preference else None, tokens_in=tokens_in, tokens_out=tokens_out)

    def learn(self, interaction_id: str, edited_text: str, *, tenant: str | None = None) -> LearnResult:
        """``submit_edit`` then ``process_edit``: the synchronous path (CLI, evaluation harness)."""
        self.submit_edit(interaction_id, edited_text, tenant=tenant)
        return self.process_edit(interaction_id)

    def process_pending(self, *, limit: int = 100) -> int:
        """Learn every accepted edit not yet learned (recovery after a crash); returns how many."""
        done = 0
        for job in self.store.jobs.pending(limit=limit):
            self.store.jobs.mark(job["id"], "running")
            try:
                self.process_edit(job["interaction_id"])
            except GeneratorUnavailable as exc:
                self.store.jobs.mark(job["id"], "pending", error=str(exc))
                raise
            done += 1
        return done

    def _routing_step(self, interaction: dict, pair: dict) -> dict | None:
        """The user's routing state after one Hedge step on (kept text ≻ draft); None without reward heads."""
        model = self.rewards.current()
        if model is None:
            return None
        vectors = self.embedder.encode([pair["chosen"], pair["rejected"]])
        context = np.asarray(interaction["context_vector"], dtype=np.float32)
        phi = self.reward_features.transform(context, vectors, [pair["chosen"], pair["rejected"]])
        losses = model.head_losses(phi[:1], phi[1:])[0]
        return update_state(self.store.router_state(interaction["user_id"]), losses, tau=self.settings.reward_tau)

    def maintenance(self) -> None:
        """Periodic background work; the server's worker calls it between learning jobs.

        Retrains the shared reward heads once ``reward_retrain_every`` new pairs arrived.
        """
        self.train_rewards()

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
            cache = EmbeddingCache(self.embedder.encode, self.settings.rewards_dir / "embeddings.npz")
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

    def import_pairs(self, pairs: Sequence[dict], *, tenant: str = "default") -> int:
        """Add preference pairs ``{"context", "chosen", "rejected", "user"?}`` to the pair log; returns how many."""
        rows = []
        for p in pairs:
            user = p.get("user")
            rows.append({**p, "user_id": self.store.user_id(tenant, validate_user(user)) if user else None})
        return self.store.add_pairs(rows, source="file")

    # -- inspection and control -------------------------------------------------------------------

    def _user_id(self, user: str, tenant: str) -> int:
        validate_user(user)
        try:
            return self.store.user_id(tenant, user, create=False)
        except NotFound as exc:
            raise UnknownUser(f"unknown user {user!r}") from exc

    def preferences(self, user: str, *, tenant: str = "default", limit: int = 50, offset: int = 0,
                    window: int = 10) -> dict:
        """What redline believes ``user`` prefers, newest first, with where each belief came from,
        and stats: edits, mean cost of the first and of the last ``window`` edits."""
        user_id = self._user_id(user, tenant)
        items = self.store.preferences(user_id, limit=limit, offset=offset)
        for item in items:
            item["user_edited"] = bool(item["user_edited"])
            ctx = item.pop("context") or ""
            item["context_snippet"] = ctx[:200] + ("…" if len(ctx) > 200 else "")
        costs = self.store.edit_costs(user_id)
        mean = (lambda xs: round(float(np.mean(xs)), 2) if xs else None)
        stats = {"edits": len(costs), "preferences": self.store.count_preferences(user_id),
                 "mean_cost_first": mean(costs[:window]), "mean_cost_last": mean(costs[-window:]), "window": window}
        routing = describe_state(self.store.router_state(user_id))
        return {"user": user, "items": items, "stats": stats, "limit": limit, "offset": offset, "routing": routing}

    def update_preference(self, user: str, preference_id: int, text: str, *, tenant: str = "default") -> dict:
        self._check_text(text, "preference text")
        try:
            return self.store.update_preference(self._user_id(user, tenant), preference_id, text.strip())
        except NotFound as exc:
            raise UnknownPreference(f"unknown preference id {preference_id}") from exc

    def delete_preference(self, user: str, preference_id: int, *, tenant: str = "default") -> None:
        try:
            self.store.delete_preference(self._user_id(user, tenant), preference_id)
        except NotFound as exc:
            raise UnknownPreference(f"unknown preference id {preference_id}") from exc

    def export_user(self, user: str, *, tenant: str = "default") -> dict:
        return self.store.export_user(self._user_id(user, tenant))

    def delete_user(self, user: str, *, tenant: str = "default") -> dict:
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
        vector = self.embedder.encode([context])[0]
        sims = np.stack([r["context_vector"] for r in rows]) @ vector
        return [(rows[i]["draft"], rows[i]["edited_text"]) for i in np.argsort(-sims, kind="stable")[:k]]
