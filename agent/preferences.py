"""A user's preference memory: the preferences learned from their edits, kept with their contexts; the ones of the
nearest past contexts retrieved and aggregated into the target preference; a new one inferred from an edit. These
are CIPHER's steps (Gao et al. 2024), over the store, the index cache and a generator.

k nearest past contexts of the same user -> their preferences -> one target preference
(k=1 or a single neighbour: used as is; otherwise the vote of the neighbours near the nearest one, or with
aggregation="llm" one LLM call, cached by the preferences' ids and texts).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import asdict, dataclass

import numpy as np

from redline.retrieval import IndexCache, PreferenceIndex
from redline.store import Store

from . import prompts
from .edit_analysis import edit_evidence, looks_like_preference, preference_items
from .editcost import tokenize
from .generators import GenerationParams, Generator

__all__ = ["PreferenceMemory", "Retrieved", "Aggregate", "Inference", "consensus_preference", "usable_answer"]

# a quoted span in a preference: apostrophes inside words (I'm) do not end it
_QUOTE = re.compile(r"'((?:[^']|'(?=\w))+)'")
_EXACT_LINE = re.compile(r"^(?:start|end) with (?:the line )?'(.+)'$")


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
    """The parts (``preference_items``: ';'-separated, or ','-separated) that more than half of ``preferences``
    contain, in order of first appearance; the first preference when no part has a majority.

    What the aggregation prompt asks for, done by counting: the default aggregation (``Settings.aggregation``), and
    what stands in for the generator's answer when that is unusable.

    >>> consensus_preference(["brief, bullet points", "bullet points", "formal tone, bullet points, brief"])
    'brief; bullet points'
    >>> consensus_preference(["start with the line 'Hi there,'; at most 60 words", "start with the line 'Hi there,'"])
    "start with the line 'Hi there,'"
    >>> consensus_preference(["formal tone", "bullet points"])
    'formal tone'
    """
    counts: dict[str, int] = {}
    shown: dict[str, str] = {}  # as first written
    for text in preferences:
        parts = {p.lower(): p for p in preference_items(text)}
        for key, part in parts.items():
            counts[key] = counts.get(key, 0) + 1
            shown.setdefault(key, part)
    agreed = [shown[key] for key, count in counts.items() if 2 * count > len(preferences)]
    return "; ".join(agreed) if agreed else preferences[0]


def voters(retrieved: list[Retrieved], margin: float) -> list[str]:
    """The preferences that vote: those of the retrieved contexts (most similar first) whose similarity is at most
    ``margin`` below the nearest one's. The k nearest of a few dozen past contexts are mostly another kind of text
    when documents differ in topic more than in kind (MiniLM on news or Wikipedia: same-source pairs are hardly
    closer than others), and their preferences outvote the one neighbour of the same kind.

    >>> near = [Retrieved(1, None, "bullet points", 0.40), Retrieved(2, None, "bullet points", 0.35),
    ...         Retrieved(3, None, "emojis", 0.12), Retrieved(4, None, "emojis", 0.10)]
    >>> voters(near, 0.1)
    ['bullet points', 'bullet points']
    >>> voters(near, 2.0)
    ['bullet points', 'bullet points', 'emojis', 'emojis']
    """
    with_text = [r for r in retrieved if r.preference]
    if not with_text:
        return []
    nearest = max(r.similarity for r in with_text)
    return [r.preference for r in with_text if r.similarity >= nearest - margin]


def usable_answer(answer: str, required: list[str], *sources: str) -> bool:
    """Whether an LLM's preference answer is used: it must read as a preference (``looks_like_preference``,
    judged on its words outside the quotes it takes from ``required``, so quoting the user's own lines is not
    copying) and keep every exact line that ``required`` quotes (start/end with the line '…')."""
    quoted = {q for item in required for q in _QUOTE.findall(item)}
    for item in required:
        line = _EXACT_LINE.match(item)
        if line and line.group(1) not in answer:
            return False
    rest = answer
    for q in sorted(quoted, key=len, reverse=True):
        rest = rest.replace(f"'{q}'", " ").replace(f'"{q}"', " ")
    return looks_like_preference(rest, *sources, max_words=40)


def copied_item(answer: str, *texts: str) -> str | None:
    """The first part of ``answer`` (``preference_items``, two tokens or more) that one of ``texts`` holds word for
    word: a line of the text restated ("Dear colleagues", "# Summary", "Hey!"), not a preference about it. None
    when there is none. Parts that describe a line ("start with the line '# Summary'") are not copies.

    >>> copied_item("# Summary; short sentences", "# Summary. The study finds ...")
    '# Summary'
    >>> copied_item("start with the line '# Summary'; short sentences", "# Summary. The study finds ...")
    """
    held = [[t.lower() for t in tokenize(text)] for text in texts if text]
    for item in preference_items(answer):
        words = [t.lower() for t in tokenize(item)]
        if len(words) < 2:
            continue
        n = len(words)
        if any(tokens[i:i + n] == words for tokens in held for i in range(len(tokens) - n + 1)):
            return item
    return None


def invented_item(answer: str, preferences: list[str]) -> str | None:
    """The first part of an aggregated ``answer`` most of whose words (of four letters or more, compared by their
    first five) none of the ``preferences`` it combines uses: combining keeps, merges, rewords and drops what the
    user showed; it does not add ("You're a busy person who ..." from "begin with a 'TL;DR:' line ...").

    >>> invented_item("bullets and brevity", ["bullet points", "short sentences"])
    >>> invented_item("You are a busy person, always looking for a way", ["begin with a 'TL;DR:' line summarising it"])
    'You are a busy person'
    """
    def stems(text: str) -> set[str]:
        return {w.lower()[:5] for w in re.findall(r"[^\W\d_]{4,}", text)}

    known = set().union(*(stems(p) for p in preferences)) if preferences else set()
    for item in preference_items(answer):
        words = stems(item)
        if words and 2 * len(words & known) < len(words):
            return item
    return None


@dataclass(frozen=True)
class Inference:
    """A preference inferred from one edit: ``source`` says whether the generator's answer was used (``llm``)
    or, the answer being unusable, the evidence measured in the edit (``evidence``)."""

    text: str
    source: str
    evidence: tuple[str, ...]
    prompt_tokens: int = 0
    completion_tokens: int = 0


class PreferenceMemory:
    """``retrieve`` a user's preferences nearest a context, ``aggregate`` them into one, ``infer`` one from an edit."""

    def __init__(self, store: Store, cache: IndexCache, *, k: int = 5, max_tokens: int = 80,
                 aggregation: str = "vote", vote_margin: float = 0.1):
        self.store = store
        self.cache = cache
        self.k = k
        self.aggregation = aggregation  # vote or llm (``Settings.aggregation``)
        self.vote_margin = vote_margin  # ``Settings.vote_margin``
        self.params = GenerationParams(n=1, temperature=0.0, max_tokens=max_tokens, stop=("\n\n",))
        # Inference runs in learning, behind requests in the generator's queue (aggregation serves a request).
        self.background = dataclasses.replace(self.params, priority="background")

    def index(self, user_id: int) -> PreferenceIndex:
        def build() -> PreferenceIndex:
            ids, vectors = self.store.preference_vectors(user_id)
            if not ids:
                return PreferenceIndex(np.zeros((0, 1), dtype=np.float32), [])
            return PreferenceIndex(vectors, ids)

        return self.cache.get(user_id, self.store.user_stamp(user_id), build)

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
        """One target preference from ``user_id``'s retrieved ones (None when there are none): the vote of those
        within ``vote_margin`` of the nearest (``voters``, ``consensus_preference``), or with ``aggregation="llm"``
        the generator's combination of them all; the cached aggregate belongs to that user (read only for them,
        removed with them)."""
        texts = list(dict.fromkeys(r.preference for r in retrieved if r.preference))
        if not texts:
            return Aggregate(None)
        if len(texts) == 1:
            return Aggregate(texts[0])
        if self.aggregation == "vote":
            return Aggregate(consensus_preference(voters(retrieved, self.vote_margin)))
        key = self.cache_key(retrieved)
        hit = self.store.cached_aggregation(user_id, key)
        if hit is not None:
            return Aggregate(hit, cached=True)
        out = generator.generate([prompts.aggregation_prompt(texts)], self.params)[0]
        text = prompts.clean_preference(out.texts[0])
        shared = consensus_preference([r.preference for r in retrieved if r.preference])
        if (not usable_answer(text, preference_items(shared), prompts.AGGREGATE_PREFERENCES)
                or invented_item(text, texts) is not None):
            text = shared  # unusable answer (small generators): vote instead
        self.store.cache_aggregation(user_id, key, text)
        return Aggregate(text, False, out.prompt_tokens, out.completion_tokens)

    def infer(self, generator: Generator, *, task: str, context: str, draft: str, edited: str) -> Inference:
        """The preference that explains the user's edit.

        The generator sees the kept text and the evidence measured in the edit (``edit_evidence``); an answer
        that is not a preference (long, copying the texts or the instructions, dropping an exact line the user
        added) is replaced by the evidence itself. The text is empty when neither says anything.
        """
        return self.infer_many(generator, [{"task": task, "context": context, "draft": draft, "edited": edited}])[0]

    def infer_many(self, generator: Generator, edits: list[dict]) -> list[Inference]:
        """``infer`` for several edits (``{"task", "context", "draft", "edited"}`` each) in ONE generator call: a
        server batches the prompts (or takes them concurrently), an in-process model runs them as one batch."""
        if not edits:
            return []
        evidence = [edit_evidence(e["draft"], e["edited"]) for e in edits]
        outs = generator.generate([prompts.inference_prompt(e["task"], e["edited"], ev)
                                   for e, ev in zip(edits, evidence)], self.background)
        inferred = []
        for e, ev, out in zip(edits, evidence, outs):
            text = prompts.clean_preference(out.texts[0])
            if (usable_answer(text, ev, e["draft"], e["edited"], e["context"], prompts.INFER_PREFERENCE)
                    and copied_item(text, e["draft"], e["edited"]) is None):
                inferred.append(Inference(text, "llm", tuple(ev), out.prompt_tokens, out.completion_tokens))
            else:
                inferred.append(Inference("; ".join(ev), "evidence", tuple(ev), out.prompt_tokens,
                                          out.completion_tokens))
        return inferred
