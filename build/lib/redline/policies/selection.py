"""Selection among candidates: greedy, best-of-n, and RPS (Robust Preference Selection).

``plan_candidates`` says which preference produces each candidate; ``batch_layout`` turns the plan into
ONE batched generator request; ``score_candidates`` scores them with a user's routed mixture reward and
``select`` picks the winner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .features import RewardFeatures
from .mixture import MixtureRewardModel
from .routing import combine

__all__ = ["STRATEGIES", "CandidatePlan", "BatchLayout", "plan_candidates", "batch_layout", "score_candidates",
           "select"]

STRATEGIES = ("greedy", "best_of_n", "rps")


@dataclass(frozen=True)
class CandidatePlan:
    """One planned candidate: the preference in its prompt (None = none), where it came from, which sample."""

    preference: str | None
    source: str  # "target" or "neighbour:<preference id>"
    sample: int = 0


@dataclass(frozen=True)
class BatchLayout:
    """One generator request: ``preferences[i]`` gives prompt i, each sampled ``n`` times;
    ``slots[j] = (prompt i, sample s)`` is where planned candidate j comes from."""

    preferences: list
    n: int
    slots: list


def _key(text: str | None) -> str:
    return " ".join((text or "").lower().split()).rstrip(".")


def plan_candidates(strategy: str, target: str | None, neighbour_prefs: Sequence[tuple[str, str]] = (),
                    n: int = 4) -> list[CandidatePlan]:
    """Which preference produces each candidate.

    - ``greedy``: the target once.
    - ``best_of_n``: ``n`` samples of the target.
    - ``rps``: the target, then each distinct neighbour preference ``(source, text)`` once (at most ``n`` in
      all), padded with further samples of the target when fewer than ``n``.

    >>> [p.source for p in plan_candidates("rps", "short", [("neighbour:3", "formal"), ("neighbour:4", "Short.")], 3)]
    ['target', 'neighbour:3', 'target']
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if strategy == "greedy":
        return [CandidatePlan(target, "target", 0)]
    if strategy == "best_of_n":
        return [CandidatePlan(target, "target", i) for i in range(n)]
    plan = [CandidatePlan(target, "target", 0)]
    seen = {_key(target)}
    for source, text in neighbour_prefs:
        if len(plan) >= n:
            break
        if not text or _key(text) in seen:
            continue
        seen.add(_key(text))
        plan.append(CandidatePlan(text, source, 0))
    extra = n - len(plan)
    plan.extend(CandidatePlan(target, "target", i) for i in range(1, extra + 1))
    return plan


def batch_layout(plan: Sequence[CandidatePlan]) -> BatchLayout:
    """Distinct prompts in plan order, sampled ``n`` = the most samples any one needs, in one request.

    (Padding RPS with target samples asks every prompt for that many; the surplus samples are dropped.)
    """
    prefs: list = []
    index: dict = {}
    slots = []
    for item in plan:
        key = item.preference
        if key not in index:
            index[key] = len(prefs)
            prefs.append(key)
        slots.append((index[key], item.sample))
    return BatchLayout(prefs, max(s for _, s in slots) + 1, slots)


def score_candidates(model: MixtureRewardModel, features: RewardFeatures, context_vector: np.ndarray,
                     candidate_vectors: np.ndarray, candidate_texts: Sequence[str], user_weights=None) -> dict:
    """Score candidates for one context with the routed mixture reward.

    Returns ``{"scores": Σ_k w_k r_k(x, y) per candidate, "win_rates": mean mixture probability of beating
    each other candidate, "weights": w(x) ∝ π(x)·ω_user}``.
    """
    phi = features.transform(context_vector, candidate_vectors, candidate_texts)
    rewards = model.rewards(phi)  # (m, K)
    weights = combine(model.route(context_vector)[0], user_weights)
    scores = rewards @ weights
    m = len(candidate_texts)
    if m > 1:
        margins = rewards[:, None, :] - rewards[None, :, :]  # (m, m, K)
        probs = (1.0 / (1.0 + np.exp(-margins))) @ weights  # (m, m)
        win_rates = (probs.sum(axis=1) - 0.5) / (m - 1)
    else:
        win_rates = np.ones(1)
    return {"scores": scores, "win_rates": win_rates, "weights": weights}


def select(scores: Sequence[float]) -> int:
    """Index of the highest score; ties go to the earliest candidate (the target comes first)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("no candidates to select from")
    return int(np.argmax(scores))
