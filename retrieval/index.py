"""Per-user FAISS indexes over past contexts, rebuilt from the store and kept in a bounded cache.

SQLite is the source of truth; an index here is only ever a cache of one user's preference rows.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable

import faiss
import numpy as np

__all__ = ["PreferenceIndex", "IndexCache", "Neighbour"]


@dataclass(frozen=True)
class Neighbour:
    preference_id: int
    similarity: float


class PreferenceIndex:
    """Exact inner-product search over normalised context vectors (cosine similarity).

    >>> idx = PreferenceIndex(np.eye(3, dtype="float32"), [10, 11, 12])
    >>> idx.search(np.array([0, 1, 0], dtype="float32"), k=1)[0].preference_id
    11
    """

    def __init__(self, vectors: np.ndarray, ids: list[int] | np.ndarray):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError("vectors must be a 2-D array")
        if len(ids) != vectors.shape[0]:
            raise ValueError("one id per vector")
        self.dim = vectors.shape[1]
        self.ids = np.asarray(ids, dtype=np.int64)
        self._index = faiss.IndexFlatIP(self.dim)
        if len(self.ids):
            self._index.add(vectors)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def search(self, vector: np.ndarray, k: int) -> list[Neighbour]:
        """The ``k`` nearest stored contexts to ``vector``, most similar first."""
        if k <= 0 or len(self) == 0:
            return []
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        if query.shape[1] != self.dim:
            raise ValueError(f"query has dimension {query.shape[1]}, index has {self.dim}")
        scores, rows = self._index.search(query, min(k, len(self)))
        return [Neighbour(int(self.ids[r]), float(s)) for s, r in zip(scores[0], rows[0]) if r >= 0]


class IndexCache:
    """A bounded LRU of per-user indexes, each tagged with the store's version of that user.

    ``get(user_id, version, build)`` returns the cached index when the version (any value that changes with the
    user's preferences, e.g. ``Store.user_stamp``) still matches and rebuilds it otherwise, so a change written by
    any process invalidates it.
    """

    def __init__(self, max_users: int = 256):
        self.max_users = max_users
        self._entries: OrderedDict[int, tuple[Hashable, PreferenceIndex]] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, user_id: int, version: Hashable, build: Callable[[], PreferenceIndex]) -> PreferenceIndex:
        with self._lock:
            hit = self._entries.get(user_id)
            if hit is not None and hit[0] == version:
                self._entries.move_to_end(user_id)
                return hit[1]
        index = build()
        with self._lock:
            self.builds += 1
            self._entries[user_id] = (version, index)
            self._entries.move_to_end(user_id)
            while len(self._entries) > self.max_users:
                self._entries.popitem(last=False)
        return index

    def drop(self, user_id: int) -> None:
        with self._lock:
            self._entries.pop(user_id, None)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, user_id: int) -> bool:
        return user_id in self._entries
