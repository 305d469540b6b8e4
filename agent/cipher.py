"""CIPHER's retrieval, aggregation and inference steps, over the store, the index cache and a generator.

k nearest past contexts of the same user -> their preferences -> one target preference
(k=1 or a single neighbour: used as is; otherwise one LLM call, cached by the preferences' ids and texts).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from redline.retrieval import IndexCache, PreferenceIndex
from redline.store import Store

from . import prompts
from .edit_analysis import describe_edit, looks_like_preference
from .generators import GenerationParams, Generator

__all__ = ["Cipher", "Retrieved", "Aggregate", "consensus_preference"]


@dataclass(frozen=True)
class Retrieved:
    preference_id: int
    interaction_id: str | None
    preference: str
    similarity: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Aggregate:
    text: str | None
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


def consensus_preference(preferences: list[str]) -> str:
    """The phrases (comma- or semicolon-separated parts) that more than half of ``preferences`` contain,
    in order of first appearance; the first preference when no phrase has a majority.

    What the aggregation prompt asks for, done by counting: it stands in when the generator's answer is
    unusable, which for SmolLM2 is nearly always (chat filler, or a refusal).

    >>> consensus_preference(["brief, bullet points", "bullet points", "formal tone, bullet points, brief"])
    'brief, bullet points'
    >>> consensus_preference(["formal tone", "bullet points"])
    'formal tone'
    """
    counts: dict[str, int] = {}
    shown: dict[str, str] = {}  # as first written
    for text in preferences:
        parts = {p.strip().lower(): p.strip() for p in text.replace(";", ",").split(",") if p.strip()}
        for key, part in parts.items():
            counts[key] = counts.get(key, 0) + 1
            shown.setdefault(key, part)
    agreed = [shown[key] for key, count in counts.items() if 2 * count > len(preferences)]
    return ", ".join(agreed) if agreed else preferences[0]


class Cipher:
    def __init__(self, store: Store, cache: IndexCache, *, k: int = 5, max_tokens: int = 48):
        self.store = store
        self.cache = cache
        self.k = k
        self.params = GenerationParams(n=1, temperature=0.0, max_tokens=max_tokens, stop=("\n\n",))

    def index(self, user_id: int) -> PreferenceIndex:
        def build() -> PreferenceIndex:
            ids, vectors = self.store.preference_vectors(user_id)
            if not ids:
                return PreferenceIndex(np.zeros((0, 1), dtype=np.float32), [])
            return PreferenceIndex(vectors, ids)

        return self.cache.get(user_id, self.store.user_version(user_id), build)

    def retrieve(self, user_id: int, vector: np.ndarray, k: int | None = None) -> list[Retrieved]:
        """The user's k nearest past contexts with their preferences, most similar first."""
        index = self.index(user_id)
        if len(index) == 0:
            return []
        hits = index.search(vector, k or self.k)
        rows = self.store.preferences_by_id([h.preference_id for h in hits])
        return [Retrieved(h.preference_id, rows[h.preference_id]["interaction_id"], rows[h.preference_id]["text"],
                          h.similarity) for h in hits if h.preference_id in rows]

    @staticmethod
    def cache_key(retrieved: list[Retrieved]) -> str:
        items = sorted((r.preference_id, r.preference) for r in retrieved)
        return hashlib.sha256(json.dumps(items).encode()).hexdigest()

    def aggregate(self, user_id: int, retrieved: list[Retrieved], generator: Generator) -> Aggregate:
        """One target preference from ``user_id``'s retrieved ones (None when there are none); the cached
        aggregate belongs to that user (read only for them, removed with them)."""
        texts = list(dict.fromkeys(r.preference for r in retrieved if r.preference))
        if not texts:
            return Aggregate(None)
        if len(texts) == 1:
            return Aggregate(texts[0])
        key = self.cache_key(retrieved)
        hit = self.store.cached_aggregation(user_id, key)
        if hit is not None:
            return Aggregate(hit, cached=True)
        out = generator.generate([prompts.aggregation_prompt(texts)], self.params)[0]
        text = prompts.clean_preference(out.texts[0])
        if not looks_like_preference(text, max_words=25):  # unusable answer (small generators): vote instead
            text = consensus_preference([r.preference for r in retrieved if r.preference])
        self.store.cache_aggregation(user_id, key, text)
        return Aggregate(text, False, out.prompt_tokens, out.completion_tokens)

    def infer(self, generator: Generator, *, task: str, context: str, draft: str, edited: str) -> tuple[str, int, int]:
        """The preference that explains the user's edit; returns (text, prompt tokens, completion tokens).

        An answer that restates content or the instructions (long, or copying a phrase of the texts or
        of the prompt) is replaced by the observed form changes; the text is empty when neither says anything.
        """
        notes = describe_edit(draft, edited)
        out = generator.generate([prompts.inference_prompt(task, context, draft, edited, observations=notes)],
                                 self.params)[0]
        text = prompts.clean_preference(out.texts[0])
        if not looks_like_preference(text, draft, edited, context, prompts.INFER_PREFERENCE):
            text = ", ".join(notes)
        return text, out.prompt_tokens, out.completion_tokens
