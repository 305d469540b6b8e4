"""The personalization loop: ``generate`` a response for a user, ``learn`` from the user's edit.

The API, the CLI and the evaluation harness all drive this one object; none of them touches the store. Its
methods live by concern: generating (``agent/generate.py``), learning and the reward heads
(``agent/learning.py``), what a user can read and change (``agent/users.py``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Sequence

import numpy as np

from redline.policies import EditFeatures
from redline.retrieval import Embedder, IndexCache
from redline.store import Store, open_store

from .checkpoints import RewardCheckpoints, remove_file_checkpoints
from .config import Settings
from .editcost import EditCost
from .errors import InvalidInput, embedding_errors
from .generate import Generating
from .generators import GenerationParams, Generator, load_generator
from .health import FAILURE_MEMORY_SECONDS, GENERATOR, WatchedGenerator
from .keys import Keys
from .learning import Learning
from .preferences import PreferenceMemory
from .rulebook import Rulebook
from .types import GenerateOptions, check_control_chars
from .users import UserData

__all__ = ["Agent"]


class Agent(Generating, Learning, UserData):
    """``generate(user, context, task)`` and ``learn(interaction_id, edited_text)``.

    Heavy parts (embedder, generator) load on first use; pass them in to share or replace them. Either way the
    generator is watched (``WatchedGenerator``: its successes and failures go to the store's health table).
    ``owner`` names
    this agent where it claims jobs and holds leases in the store (default: host, process id and a random part,
    unique to this object); a learner restarted in the same slot passes the same one.
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
        self.memory = PreferenceMemory(self.store, self.index_cache, k=self.settings.k)
        self.edit_cost = EditCost(self.settings.delta)
        self.rewards = RewardCheckpoints(self.store)
        # What an older redline kept under DATA_DIR/rewards/ (checkpoint folders, text embeddings), where a hard
        # delete cannot reach it; the checkpoints live in the store now.
        if remove_file_checkpoints(self.settings.rewards_dir):
            self.store.queue_retrain()
        self.edit_features = EditFeatures()
        self.keys = Keys(self.store)
        self.rulebook = Rulebook(self.store, self.settings)

    # -- parts ------------------------------------------------------------------------------------

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            with self._generator_lock:
                if self._generator is None:
                    self._generator = WatchedGenerator(load_generator(self.settings), self.store.health)
        return self._generator

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (the embedder's failure to load is ``EmbeddingUnavailable``)."""
        with embedding_errors():
            return self.embedder.encode(texts)

    def _check_text(self, text: str, what: str) -> str:
        if not isinstance(text, str):
            raise InvalidInput(f"{what} must be a string")
        if not text.strip():
            raise InvalidInput(f"{what} is empty")
        if len(text) > self.settings.max_text_chars:
            raise InvalidInput(f"{what} is {len(text)} characters; the limit is {self.settings.max_text_chars}")
        return check_control_chars(text, what)

    def _texts_for_log(self, **texts: str | None) -> str:
        """`` name_chars=N`` for each text of a log line; the texts themselves only when ``REDLINE_LOG_TEXT`` asks
        (a debugging aid: they are the users' words, and logs outlive a user's hard delete)."""
        parts = [f"{name}_chars={len(text or '')}" for name, text in texts.items()]
        if self.settings.log_text:
            parts += [f"{name}={text!r}" for name, text in texts.items()]
        return " ".join(parts)

    def _params(self, options: GenerateOptions, n: int = 1) -> GenerationParams:
        try:
            return GenerationParams(
                n=n, temperature=self.settings.temperature if options.temperature is None else options.temperature,
                max_tokens=options.max_tokens or self.settings.max_tokens,
                seed=self.settings.seed if options.seed is None else options.seed)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc

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
