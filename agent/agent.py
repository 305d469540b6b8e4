"""The personalization loop: ``generate`` a response for a user, ``learn`` from the user's edit.

The API, the CLI and the evaluation harness all drive this one object; none of them touches the store. It holds
its parts and hands each what it needs: the generation pipeline (``agent/generate.py``), the edit learner
(``agent/learning.py``), the reward trainer (each user's reward state and the shared retraining,
``agent/reward_training.py``), the user's data as they read and change it (``agent/users.py``), over the user's
preference memory (CIPHER's steps, ``agent/preferences.py``) and edit rules (``agent/rulebook.py``). Its methods
below are those parts' calls, by concern.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Sequence

from redline.policies import EditFeatures
from redline.retrieval import Embedder, IndexCache
from redline.store import Store, StoreError, open_store

from .checkpoints import RewardCheckpoints, remove_file_checkpoints
from .config import Settings
from .editcost import EditCost
from .errors import AgentError
from .generate import GenerationPipeline
from .generators import Generator, load_generator
from .health import FAILURE_MEMORY_SECONDS, GENERATOR, WatchedGenerator
from .jobs import JobOutcome
from .keys import Keys
from .learning import EditLearner
from .preferences import PreferenceMemory
from .reward_training import RewardTrainer
from .rulebook import UNCHANGED, Rulebook
from .types import EditReceipt, GenerateOptions, GenerateResult, LearnResult, StreamStart, TextDelta
from .users import UserData

__all__ = ["Agent"]


class Agent:
    """``generate(user, context, task)`` and ``learn(interaction_id, edited_text)``.

    Heavy parts (embedder, generator) load on first use; pass them in to share or replace them. Either way the
    generator is watched (``WatchedGenerator``: its successes and failures go to the store's health table).
    ``owner`` names this agent where it claims jobs and holds leases in the store (default: host, process id and a
    random part, unique to this object); a learner restarted in the same slot passes the same one.
    """

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None,
                 embedder: Embedder | None = None, generator: Generator | None = None, owner: str | None = None):
        self.settings = settings or Settings()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.store = store or open_store(self.settings.database_url, self.settings.store_path,
                                         pool_size=self.settings.database_pool_size)
        self.embedder = embedder or Embedder(self.settings.embedding_model, dtype=self.settings.embedding_dtype)
        self._owns_generator = generator is None
        self._generator = WatchedGenerator(generator, self.store.health) if generator is not None else None
        self._generator_lock = threading.Lock()
        self.index_cache = IndexCache(self.settings.index_cache_users)
        self.memory = PreferenceMemory(self.store, self.index_cache, k=self.settings.k,
                                       aggregation=self.settings.aggregation, vote_margin=self.settings.vote_margin)
        self.edit_cost = EditCost(self.settings.delta)
        self.rewards = RewardCheckpoints(self.store)
        # What an older redline kept under DATA_DIR/rewards/ (checkpoint folders, text embeddings), where a hard
        # delete cannot reach it; the checkpoints live in the store now.
        if remove_file_checkpoints(self.settings.rewards_dir):
            self.store.queue_retrain()
        self.edit_features = EditFeatures()
        self.keys = Keys(self.store)
        self.rulebook = Rulebook(self.store, self.settings)
        generator_of: Callable[[], Generator] = lambda: self.generator  # noqa: E731 (loads on first use)
        self.reward_trainer = RewardTrainer(self.store, self.rewards, self.settings, features=self.edit_features,
                                            embedder=self.embedder, owner=self.owner)
        self.pipeline = GenerationPipeline(self.store, self.settings, embedder=self.embedder, generator=generator_of,
                                           memory=self.memory, reward_trainer=self.reward_trainer,
                                           rulebook=self.rulebook, features=self.edit_features)
        self.learner = EditLearner(self.store, self.settings, generator=generator_of, memory=self.memory,
                                   edit_cost=self.edit_cost, features=self.edit_features, rulebook=self.rulebook,
                                   reward_trainer=self.reward_trainer, owner=self.owner)
        self.user_data = UserData(self.store, self.settings, embedder=self.embedder, rulebook=self.rulebook,
                                  reward_trainer=self.reward_trainer, index_cache=self.index_cache)

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            with self._generator_lock:
                if self._generator is None:
                    self._generator = WatchedGenerator(load_generator(self.settings), self.store.health)
        return self._generator

    # -- generating (GenerationPipeline) ----------------------------------------------------------------------

    def generate(self, user: str, context: str, task: str = "summarize", options: GenerateOptions | None = None,
                 *, tenant: str = "default") -> GenerateResult:
        """Personalized response for ``user`` on ``context``, stored as a new interaction
        (``GenerationPipeline.generate``)."""
        return self.pipeline.generate(user, context, task, options, tenant=tenant)

    def generate_stream(self, user: str, context: str, task: str = "summarize",
                        options: GenerateOptions | None = None, *, tenant: str = "default"
                        ) -> Iterator[StreamStart | TextDelta | GenerateResult]:
        """``generate`` as it happens (``GenerationPipeline.generate_stream``)."""
        return self.pipeline.generate_stream(user, context, task, options, tenant=tenant)

    # -- learning (EditLearner) -------------------------------------------------------------------------------

    def submit_edit(self, interaction_id: str, edited_text: str, *, tenant: str | None = None) -> EditReceipt:
        """Durably accept the user's kept text (``EditLearner.submit_edit``)."""
        return self.learner.submit_edit(interaction_id, edited_text, tenant=tenant)

    def process_edit(self, interaction_id: str) -> LearnResult:
        """Learn from one stored edit, exactly once (``EditLearner.process_edit``)."""
        return self.learner.process_edit(interaction_id)

    def process_edits(self, interaction_ids: Sequence[str]) -> list[LearnResult | AgentError | StoreError]:
        """Learn from several stored edits as one step (``EditLearner.process_edits``)."""
        return self.learner.process_edits(interaction_ids)

    def learn(self, interaction_id: str, edited_text: str, *, tenant: str | None = None) -> LearnResult:
        """``submit_edit`` then ``process_edit`` (``EditLearner.learn``)."""
        return self.learner.learn(interaction_id, edited_text, tenant=tenant)

    def run_jobs(self, *, limit: int | None = None, stopping: Callable[[], bool] = lambda: False,
                 context: Callable[[dict], ContextManager] | None = None,
                 on_outcome: Callable[[JobOutcome], None] | None = None, owner: str | None = None) -> list[JobOutcome]:
        """Claim and learn queued edits, oldest first (``EditLearner.run_jobs``)."""
        return self.learner.run_jobs(limit=limit, stopping=stopping, context=context, on_outcome=on_outcome,
                                     owner=owner)

    def process_pending(self, *, limit: int = 100) -> int:
        """Learn every accepted edit not yet learned, then the retraining a hard delete queued
        (``EditLearner.process_pending``)."""
        return self.learner.process_pending(limit=limit)

    def retry_learning(self, *, tenant: str | None = None) -> int:
        """Queue again the learning jobs that failed (``EditLearner.retry_learning``)."""
        return self.learner.retry_learning(tenant=tenant)

    def retry_generator_jobs(self, *, probe: bool = True) -> int:
        """Queue again the jobs the generator failed, once it answers (``EditLearner.retry_generator_jobs``)."""
        return self.learner.retry_generator_jobs(probe=probe)

    # -- the shared reward (RewardTrainer) --------------------------------------------------------------------

    def train_rewards(self, *, force: bool = False, n_heads: int | None = None, seed: int | None = None,
                      forget: bool = False, wait: float | None = None) -> dict | None:
        """Retrain the shared reward: the queued retraining of hard deletes, else when due, or with ``force``
        (``RewardTrainer.train``)."""
        return self.reward_trainer.train(force=force, n_heads=n_heads, seed=seed, forget=forget, wait=wait)

    def run_retrain_jobs(self, *, owner: str | None = None, wait: float = 600.0) -> dict | None:
        """The retraining hard deletes queued (``RewardTrainer.run_retrain_jobs``)."""
        return self.reward_trainer.run_retrain_jobs(owner=owner, wait=wait)

    def import_pairs(self, pairs: Sequence[dict], *, tenant: str = "default") -> int:
        """Add preference pairs to the pair log (``RewardTrainer.import_pairs``)."""
        return self.reward_trainer.import_pairs(pairs, tenant=tenant)

    def import_pairs_file(self, path: str | Path, *, tenant: str = "default") -> int:
        """``import_pairs`` from a JSONL file (``RewardTrainer.import_pairs_file``)."""
        return self.reward_trainer.import_pairs_file(path, tenant=tenant)

    # -- what a user reads and changes (UserData) -------------------------------------------------------------

    def interaction(self, interaction_id: str, *, tenant: str | None = None) -> dict:
        """One interaction and its learning status (``UserData.interaction``)."""
        return self.user_data.interaction(interaction_id, tenant=tenant)

    def preferences(self, user: str, *, tenant: str = "default", limit: int = 50, offset: int = 0,
                    window: int = 10) -> dict:
        """What redline believes ``user`` prefers, and why (``UserData.preferences``)."""
        return self.user_data.preferences(user, tenant=tenant, limit=limit, offset=offset, window=window)

    def users(self, *, tenant: str = "default", limit: int = 100, offset: int = 0, window: int = 10) -> dict:
        """The tenant's users, most recently active first (``UserData.users``)."""
        return self.user_data.users(tenant=tenant, limit=limit, offset=offset, window=window)

    def edit_history(self, user: str, *, tenant: str = "default") -> list[dict]:
        """The user's edits oldest first (``UserData.edit_history``)."""
        return self.user_data.edit_history(user, tenant=tenant)

    def update_preference(self, user: str, preference_id: int, text: str, *, tenant: str = "default") -> dict:
        """Correct a learned preference (``UserData.update_preference``)."""
        return self.user_data.update_preference(user, preference_id, text, tenant=tenant)

    def delete_preference(self, user: str, preference_id: int, *, tenant: str = "default") -> None:
        """Delete a learned preference (``UserData.delete_preference``)."""
        self.user_data.delete_preference(user, preference_id, tenant=tenant)

    def rules(self, user: str, *, tenant: str = "default") -> list[dict]:
        """The user's learned edit rules, active ones first (``UserData.rules``)."""
        return self.user_data.rules(user, tenant=tenant)

    def update_rule(self, user: str, rule_id: int, *, enabled: object = UNCHANGED, text: str | None = None,
                    tenant: str = "default") -> dict:
        """Turn a rule on or off and/or rewrite its text (``UserData.update_rule``)."""
        return self.user_data.update_rule(user, rule_id, enabled=enabled, text=text, tenant=tenant)

    def delete_rule(self, user: str, rule_id: int, *, tenant: str = "default") -> None:
        """Forget a rule and its evidence (``UserData.delete_rule``)."""
        self.user_data.delete_rule(user, rule_id, tenant=tenant)

    def export_user(self, user: str, *, tenant: str = "default") -> dict:
        """Everything stored of the user (``UserData.export_user``)."""
        return self.user_data.export_user(user, tenant=tenant)

    def delete_user(self, user: str, *, tenant: str = "default") -> dict:
        """Hard delete (``UserData.delete_user``)."""
        return self.user_data.delete_user(user, tenant=tenant)

    def nearest_edits(self, user: str, context: str, k: int, *, tenant: str = "default") -> list[tuple[str, str]]:
        """The user's ``k`` past (draft, edit) pairs nearest ``context`` (``UserData.nearest_edits``)."""
        return self.user_data.nearest_edits(user, context, k, tenant=tenant)

    # -- operations -------------------------------------------------------------------------------

    def ping(self) -> bool:
        """Whether the store answers."""
        return self.store.ping()

    def queue_depth(self) -> int:
        """Learning jobs pending or running."""
        return self.store.jobs.queued()

    def parked_jobs(self) -> int:
        """Learning jobs parked: they failed every attempt and wait for a retry."""
        return self.store.jobs.parked()

    def generator_down(self) -> dict | None:
        """The generator's health row (``failed_at``, ``error``) while it is down, as every process's calls saw it:
        a failure within the last ``FAILURE_MEMORY_SECONDS`` newer than the last success. None when it is not."""
        return self.store.health.down(GENERATOR, memory_seconds=FAILURE_MEMORY_SECONDS)

    def learners(self) -> int:
        """Learner processes on this store that said they are alive within their lease (``learner_alive``)."""
        return len(self.store.leases.live("learner:"))

    def learner_alive(self, *, seconds: float) -> None:
        """Say, for ``seconds``, that this agent's learner is alive (a lease ``learner:<owner>``)."""
        self.store.leases.acquire(f"learner:{self.owner}", self.owner, seconds=seconds)

    def learner_gone(self) -> None:
        """Withdraw ``learner_alive`` (a clean stop)."""
        self.store.leases.release(f"learner:{self.owner}", self.owner)

    def release_claims(self) -> int:
        """Queue again the jobs this agent's ``owner`` still holds: a learner restarted in the slot of one that died
        takes them back at once rather than after their lease. Returns how many."""
        return self.store.jobs.release_owner(self.owner)

    def wait_for_jobs(self, timeout: float, *, poll: float = 0.1) -> bool:
        """Wait up to ``timeout`` seconds until a learning job can be claimed: at once for one queued by this process,
        within ``poll`` seconds for one queued by another (a read of the store, which costs writers nothing)."""
        end = time.monotonic() + timeout
        while True:
            if self.store.jobs.claimable():
                return True
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.store.jobs.wait(min(poll, left))

    def retrain_queued(self) -> bool:
        """Whether a hard delete queued a retraining that no learner has claimed yet."""
        return self.store.jobs.claimable(kind="retrain")

    def close(self) -> None:
        """Close the store, and stop the generator the agent built (a llama-server it started); a generator passed
        in belongs to the caller."""
        self.store.close()
        if self._owns_generator and self._generator is not None and hasattr(self._generator.inner, "close"):
            self._generator.inner.close()
