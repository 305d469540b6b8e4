"""Reward features φ(x, y): the context and candidate embeddings the agent already has, plus a few
generic stylometric features of the candidate text (embeddings barely see form; edits are mostly about form).

Nothing here embeds text: callers pass the vectors they computed once per request.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

__all__ = ["StyleFeatures", "RewardFeatures"]

_SENT = re.compile(r"(?<=[.!?…])[\"'”’)]*\s+")
_WORD = re.compile(r"[A-Za-z0-9\u00C0-\u024F']+")
_LIST = re.compile(r"^\s*(?:[-*•+]|\d+[.)])\s+")
_FIRST = {"i", "me", "my", "mine", "we", "us", "our", "ours"}
_SECOND = {"you", "your", "yours"}
_HEDGES = {"perhaps", "maybe", "might", "somewhat", "quite", "rather", "very", "really", "just", "seemed", "seem"}


class StyleFeatures:
    """Generic form features of a text, each a small number on a comparable scale.

    >>> StyleFeatures().transform(["One line. Two lines?"]).shape
    (1, 24)
    """

    names = (
        "log_words", "log_chars", "mean_sentence_words", "sd_sentence_words", "log_sentences", "short_sentences",
        "long_sentences", "lines", "blank_lines", "list_items", "mean_word_chars", "long_words", "type_token",
        "commas", "semicolons_colons", "dashes", "parentheses", "quotes", "exclamations", "questions",
        "capitalised", "upper_ratio", "digits", "adverbs_hedges",
    )

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Array of shape (len(texts), len(names)), float32."""
        if isinstance(texts, str):
            raise TypeError("transform takes a sequence of texts, not one string")
        return np.array([self._one(t) for t in texts], dtype=np.float32).reshape(len(texts), len(self.names))

    def _one(self, text: str) -> list[float]:
        text = text or ""
        words = _WORD.findall(text)
        nw = max(len(words), 1)
        sentences = [s for s in _SENT.split(text.strip()) if s.strip()] or [""]
        lens = np.array([len(_WORD.findall(s)) for s in sentences], dtype=np.float64)
        lines = [ln for ln in text.splitlines()]
        nonblank = [ln for ln in lines if ln.strip()]
        lower = [w.lower() for w in words]
        letters = [c for c in text if c.isalpha()]
        per_word = lambda count: count / nw * 10.0  # noqa: E731 - per ten words
        return [
            math.log1p(len(words)),
            math.log1p(len(text)),
            float(lens.mean()) / 10.0,
            float(lens.std()) / 10.0,
            math.log1p(len(sentences)),
            float(np.mean(lens <= 8)),
            float(np.mean(lens >= 25)),
            math.log1p(len(nonblank)),
            math.log1p(sum(1 for ln in lines if not ln.strip())),
            sum(1 for ln in nonblank if _LIST.match(ln)) / max(len(nonblank), 1),
            (sum(len(w) for w in words) / nw) / 5.0,
            sum(1 for w in words if len(w) >= 8) / nw,
            len(set(lower)) / nw,
            per_word(text.count(",")),
            per_word(text.count(";") + text.count(":")),
            per_word(text.count("—") + text.count("–") + text.count(" - ")),
            per_word(text.count("(")),
            per_word(sum(text.count(q) for q in "\"“”")),
            per_word(text.count("!")),
            per_word(text.count("?")),
            sum(1 for w in words[1:] if w[:1].isupper()) / nw,
            (sum(1 for c in letters if c.isupper()) / max(len(letters), 1)) * 10.0,
            per_word(sum(1 for w in words if w.isdigit())),
            per_word(sum(1 for w in lower if w.endswith("ly") or w in _HEDGES)),
        ]


class RewardFeatures:
    """φ(x, y) = [style(y), embedding(y), cos(x, y)] from vectors computed elsewhere.

    ``use_embedding=False`` keeps only the style features and the context–candidate similarity.

    >>> phi = RewardFeatures().transform(ctx_vecs, cand_vecs, cand_texts)   # (n, dim)
    """

    def __init__(self, *, use_embedding: bool = True):
        self.use_embedding = use_embedding
        self.style = StyleFeatures()

    def dim(self, embedding_dim: int) -> int:
        return len(StyleFeatures.names) + (embedding_dim if self.use_embedding else 0) + 1

    def transform(self, context_vectors: np.ndarray, candidate_vectors: np.ndarray,
                  candidate_texts: Sequence[str]) -> np.ndarray:
        """Rows pair up: context i with candidate i. A single context row is broadcast to all candidates."""
        cand = np.asarray(candidate_vectors, dtype=np.float32)
        ctx = np.asarray(context_vectors, dtype=np.float32)
        if cand.ndim != 2 or len(cand) != len(candidate_texts):
            raise ValueError("candidate_vectors must be (n, dim) with one row per candidate text")
        if ctx.ndim == 1:
            ctx = ctx[None, :]
        if len(ctx) == 1 and len(cand) != 1:
            ctx = np.repeat(ctx, len(cand), axis=0)
        if ctx.shape != cand.shape:
            raise ValueError(f"context vectors {ctx.shape} do not match candidate vectors {cand.shape}")
        parts = [self.style.transform(candidate_texts)]
        if self.use_embedding:
            parts.append(cand)
        parts.append(np.sum(ctx * cand, axis=1, keepdims=True))
        return np.concatenate(parts, axis=1).astype(np.float32)
