"""The shared reward as learning keeps it: each user's reward state under the published checkpoint (read, never
written, on the read paths), the online step a learned edit takes, the retraining of the shared reward (due, forced,
or queued by a hard delete) and pairs imported from files."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from redline.policies import FEATURES_VERSION, EditFeatures, EditProfileReward, read_pairs_jsonl, train_rewards
from redline.retrieval import Embedder
from redline.store import Store

from .checkpoints import RewardCheckpoints
from .config import Settings
from .errors import InvalidInput, encode
from .jobs import renewing
from .types import validate_user

__all__ = ["RewardTrainer", "RETRAIN_LEASE_SECONDS"]
log = logging.getLogger(__name__)
# The retraining lease: renewed every third of it while a retraining runs, so a learner that dies mid-retraining
# holds up the next one for at most this long.
RETRAIN_LEASE_SECONDS = 60.0


class RewardTrainer:
    """``user_reward(user_id)`` to score with, ``steps(pairs)`` after learned edits, ``train()`` the shared reward.

    Built on the store, the published ``checkpoints``, the reward's ``features`` and the ``embedder`` (contexts of
    imported pairs, for the router); ``owner`` names this process where it holds the retraining lease and claims
    retraining jobs.
    """

    def __init__(self, store: Store, checkpoints: RewardCheckpoints, settings: Settings, *, features: EditFeatures,
                 embedder: Embedder, owner: str):
        self.store, self.checkpoints, self.settings = store, checkpoints, settings
        self.features, self.embedder, self.owner = features, embedder, owner

    # -- each user's state ------------------------------------------------------------------------------------

    def state(self, user_id: int, model: EditProfileReward, checkpoint: str) -> dict | None:
        """The user's reward state under ``checkpoint``: the stored one when it is current (computed under that
        checkpoint, with every stored pair of the user folded in), else replayed from the user's stored pair
        features (after a retraining, a race with one, or a deleted pair). Only read: a replayed state is stored
        by the user's next learning step (with its step) or the next retraining. None for a user without pairs:
        nothing learned yet."""
        stored = self.store.reward_state(user_id)
        count = self.store.count_pair_features(FEATURES_VERSION, user_id=user_id)
        if (stored is not None and stored.get("checkpoint") == checkpoint and stored.get("n") == count
                and model.valid_state(stored) is stored):
            return stored
        if count == 0:
            return None
        rows = self.store.pair_features(FEATURES_VERSION, user_id=user_id)["features"]
        return {**model.replay(rows), "checkpoint": checkpoint}

    def user_reward(self, user_id: int) -> tuple[EditProfileReward, dict] | None:
        """``(model, state)``: the published reward and the user's state under it (read only); None without a
        trained reward or before the user's first learned pair."""
        checkpoint, model = self.checkpoints.current_named()
        state = self.state(user_id, model, checkpoint) if model is not None else None
        return (model, state) if state is not None else None

    def describe(self, user_id: int) -> dict | None:
        """The user's routing over the reward heads and where their edits depart from everyone's (None before a
        trained reward exists or before the user's first learned edit)."""
        reward = self.user_reward(user_id)
        return reward[0].describe_state(reward[1]) if reward is not None else None

    def steps(self, pairs: Sequence[tuple[int, np.ndarray] | None]) -> list[dict | None]:
        """Each pair's user's reward state after one online step on its ``(user_id, features)``, in order, so two
        edits of one user chain; None for no pair, and for every one without a reward yet (the first retraining
        replays every user's state from the stored pairs). A state replayed here is stored only as the state after
        the step, in the learning step's one transaction."""
        checkpoint, model = self.checkpoints.current_named()
        if model is None:
            return [None] * len(pairs)
        states: dict[int, dict] = {}
        out: list[dict | None] = []
        for pair in pairs:
            if pair is None:
                out.append(None)
                continue
            user_id, features = pair
            state = states.get(user_id) or self.state(user_id, model, checkpoint) or model.init_state()
            states[user_id] = {**model.update(state, features), "checkpoint": checkpoint}
            out.append(states[user_id])
        return out

    # -- the shared retraining ---------------------------------------------------------------------------------

    def run_retrain_jobs(self, *, owner: str | None = None, wait: float = 600.0) -> dict | None:
        """Claim every queued ``retrain`` job (a hard delete removed pairs the shared reward was trained on) and run
        one retraining for all of them with ``forget=True``: it reads the pairs after every claimed delete, keeps no
        older checkpoint, and removes them all when no pair is left. Waits up to ``wait`` seconds for a retraining
        another process runs (it may have read the deleted pairs; this one publishes after it). Returns the summary
        (``{"forgotten": True}`` when no pair was left), or None when no such job was queued."""
        owner, jobs_store = owner or self.owner, self.store.jobs
        lease = self.settings.job_lease_seconds
        jobs = jobs_store.claim(owner, limit=10_000, kind="retrain", lease_seconds=lease)
        if not jobs:
            return None
        ids = [job["id"] for job in jobs]
        try:
            with renewing(lambda: jobs_store.renew(owner, lease_seconds=lease), lease / 3):
                summary = self.train(forget=True, wait=wait)
        except BaseException as exc:
            jobs_store.mark(ids, "pending", owner=owner, error=repr(exc))
            raise
        if summary is None:  # the retraining lease stayed taken: try again later
            jobs_store.mark(ids, "pending", owner=owner, error="another process kept the retraining lease")
            return None
        jobs_store.mark(ids, "done", owner=owner)
        log.info("retrained for %d hard deletes", len(ids))
        return summary

    def _backfill_pair_features(self) -> int:
        """Compute the features of pairs stored without them (or under an older feature version), once."""
        done = 0
        while rows := self.store.pairs_without_features(FEATURES_VERSION, limit=1000):
            features = self.features.transform([r["chosen"] for r in rows], [r["rejected"] for r in rows])
            self.store.set_pair_features([{**r, "features": f} for r, f in zip(rows, features)], FEATURES_VERSION)
            done += len(rows)
        return done

    def _retrain_due(self, info: dict) -> str | None:
        """Why a retraining is due without ``force`` (None: it is not)."""
        last = info.get("last_pair_id", 0)
        if self.store.count_pairs(since_id=last) >= self.settings.reward_retrain_every:
            return "new pairs"
        if info and self.checkpoints.current() is None and self.store.count_pairs():
            return "unreadable checkpoint"
        if info and self.store.count_pairs(until_id=last) < info.get("pairs", 0):
            return "pairs deleted"
        # A checkpoint of features defined otherwise scores this version's features wrongly (no version: the first).
        if info and info.get("features_version", 1) != FEATURES_VERSION and self.store.count_pairs():
            return "features changed"
        return None

    @contextmanager
    def _retraining_lease(self, wait: float) -> Iterator[bool]:
        """Hold the store's ``retrain`` lease (one retraining at a time across every process on the store), renewed
        while the block runs; waits up to ``wait`` seconds for it. Yields whether it is held."""
        seconds, leases = RETRAIN_LEASE_SECONDS, self.store.leases
        end = time.monotonic() + wait
        while not (held := leases.acquire("retrain", self.owner, seconds=seconds)) and time.monotonic() < end:
            time.sleep(0.2)
        if not held:
            yield False
            return
        try:
            with renewing(lambda: leases.renew("retrain", self.owner, seconds=seconds), seconds / 3):
                yield True
        finally:
            leases.release("retrain", self.owner)

    def train(self, *, force: bool = False, n_heads: int | None = None, seed: int | None = None,
              forget: bool = False, wait: float | None = None) -> dict | None:
        """``Agent.train_rewards``: retrain the shared reward on every stored pair's features, publish the checkpoint
        in the store, and replay every user's state under it (the learner process calls this beside learning).

        Without ``force``: first the retraining that hard deletes queued (``run_retrain_jobs``); else only when due:
        once ``reward_retrain_every`` new pairs arrived, when pairs it was trained on were deleted, when the published
        checkpoint cannot be read (an older redline's), or when it was trained on features of another
        ``FEATURES_VERSION`` (their rows are recomputed from the texts first). ``forget``: pairs were deleted; keep no
        older checkpoint, and remove them all when no pair is left (the summary then says ``{"forgotten": True}``).
        One retraining runs at a time over the store (a lease): this waits ``wait`` seconds for another (default:
        none for a due retraining, ten minutes when forced or forgetting), then returns None without training.
        Returns a summary, or None when nothing was done."""
        if not (force or forget) and (summary := self.run_retrain_jobs()) is not None:
            return summary
        if wait is None:
            wait = 600.0 if force or forget else 0.0
        with self._retraining_lease(wait) as held:
            if not held:
                log.info("reward retraining skipped: another process holds the retraining lease")
                return None
            info = self.checkpoints.current_info() or {}
            why = "forced" if force else "pairs deleted" if forget else self._retrain_due(info)
            if why is None:
                return None
            return self._retrain(info, why, forget=forget, n_heads=n_heads, seed=seed)

    def _retrain(self, info: dict, why: str, *, forget: bool, n_heads: int | None, seed: int | None) -> dict | None:
        clock = time.perf_counter()
        new = self.store.count_pairs(since_id=info.get("last_pair_id", 0))
        backfilled = self._backfill_pair_features()
        data = self.store.pair_features(FEATURES_VERSION, contexts=self.settings.reward_router)
        if not data["ids"]:
            if forget:
                self.checkpoints.remove_all()
                return {"forgotten": True, "reason": why, "pairs": 0}
            return None
        read_s = time.perf_counter() - clock
        k = n_heads or self.settings.reward_heads
        trained = train_rewards(data["features"], data["user_ids"], data["contexts"], n_heads=k,
                                seed=self.settings.reward_seed if seed is None else seed,
                                tau=self.settings.reward_tau, mode=self.settings.reward_mode,
                                router=self.settings.reward_router)
        meta = {"last_pair_id": max(data["ids"]), "pairs": len(data["ids"]), "heads": k,
                "features_version": FEATURES_VERSION,
                "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        # A checkpoint trained on deleted pairs (or unreadable) is not kept for a rollback.
        keep = 1 if forget or why in ("pairs deleted", "unreadable checkpoint", "features changed") else None
        name = self.checkpoints.publish(trained.model, meta, keep=keep)
        self.store.put_reward_states({user_id: {**state, "checkpoint": name}
                                      for user_id, state in trained.states.items()})
        summary = {"checkpoint": name, **meta, "reason": why, "new_pairs": new,
                   "users_routed": len(trained.states), "features_backfilled": backfilled,
                   "read_seconds": round(read_s, 3), "seconds": round(time.perf_counter() - clock, 3)}
        log.info("reward retrained %s", summary)
        return summary

    # -- pairs from elsewhere ------------------------------------------------------------------------------------

    def import_pairs_file(self, path: str | Path, *, tenant: str = "default") -> int:
        """``import_pairs`` from a JSONL file (``policies.read_pairs_jsonl``); a bad line is ``InvalidInput``."""
        try:
            pairs = read_pairs_jsonl(path)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(str(exc)) from exc
        return self.import_pairs(pairs, tenant=tenant)

    def import_pairs(self, pairs: Sequence[dict], *, tenant: str = "default") -> int:
        """Add preference pairs ``{"context", "chosen", "rejected", "user"?}`` to the pair log with their reward
        features (and, for the router, their contexts' vectors), computed once here; returns how many."""
        if not pairs:
            return 0
        features = self.features.transform([p["chosen"] for p in pairs], [p["rejected"] for p in pairs])
        vectors = (encode(self.embedder, [p["context"] for p in pairs]) if self.settings.reward_router
                   else [None] * len(pairs))
        rows = []
        for p, z, vector in zip(pairs, features, vectors):
            user = p.get("user")
            rows.append({**p, "user_id": self.store.user_id(tenant, validate_user(user)) if user else None,
                         "features": z, "features_version": FEATURES_VERSION, "context_vector": vector})
        return self.store.add_pairs(rows, source="file")
