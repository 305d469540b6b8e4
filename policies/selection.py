"""Candidates that differ, and the choice among them: greedy, best-of-n and RPS (Robust Preference Selection).

Candidate 0 is always the greedy draft of the target preference (what ``greedy`` answers); the others are
alternatives, drawn at a candidate temperature even when the request's own temperature is 0 (n greedy copies
would leave nothing to choose). ``plan_candidates`` says which preference writes each candidate,
``batch_layout`` turns the alternatives into ONE batched generator request, ``score_candidates`` scores every
candidate relative to the greedy draft with the user's reward, and ``select`` picks the winner.

Alternatives come in one of two ``CANDIDATE_MODES``: ``samples`` (independent drafts of the task prompt, scored
on the form features only, since they are not revisions of the greedy draft) or ``revisions`` (the generator
revises the greedy draft towards each preference; scored on all features, alignment included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .edit_profile import EditProfileReward

__all__ = ["STRATEGIES", "CANDIDATE_MODES", "CandidatePlan", "BatchLayout", "plan_candidates", "batch_layout",
           "score_candidates", "select"]

STRATEGIES = ("greedy", "best_of_n", "rps")
CANDIDATE_MODES = ("samples", "revisions")


@dataclass(frozen=True)
class CandidatePlan:
    """One planned candidate: the preference that writes it (None = none), where that preference came from
    (``target`` or ``neighbour:<preference id>``), and which sample of its prompt it is. The first candidate of
    every plan is the greedy target draft; the rest are alternatives (``sample`` counts within the alternatives)."""

    preference: str | None
    source: str
    sample: int = 0


@dataclass(frozen=True)
class BatchLayout:
    """One generator request: ``preferences[i]`` gives prompt i, each sampled ``n`` times;
    ``slots[j] = (prompt i, sample s)`` is where planned alternative j comes from."""

    preferences: list
    n: int
    slots: list


def _key(text: str | None) -> str:
    return " ".join((text or "").lower().split()).rstrip(".")


def plan_candidates(strategy: str, target: str | None, neighbour_prefs: Sequence[tuple[str, str]] = (),
                    n: int = 4) -> list[CandidatePlan]:
    """Which preference writes each candidate; the first is the greedy target draft.

    - ``greedy``: the target draft only.
    - ``best_of_n``: the target draft, then ``n − 1`` sampled alternatives of the target.
    - ``rps``: the target draft, then one alternative per distinct neighbour preference ``(source, text)`` (the
      local neighbourhood of the target direction; at most ``n`` candidates in all), padded with sampled
      alternatives of the target up to ``n``.

    >>> [p.source for p in plan_candidates("rps", "short", [("neighbour:3", "formal"), ("neighbour:4", "Short.")], 3)]
    ['target', 'neighbour:3', 'target']
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    plan = [CandidatePlan(target, "target", 0)]
    if strategy == "greedy":
        return plan
    if strategy == "rps":
        seen = {_key(target)}
        for source, text in neighbour_prefs:
            if len(plan) >= n:
                break
            if text and _key(text) not in seen:
                seen.add(_key(text))
                plan.append(CandidatePlan(text, source, 0))
    plan.extend(CandidatePlan(target, "target", i) for i in range(n - len(plan)))
    return plan


def batch_layout(alternatives: Sequence[CandidatePlan]) -> BatchLayout:
    """Distinct prompts in plan order, each sampled ``n`` = the most samples any one needs, in one request.

    (Padding RPS with target samples asks every prompt for that many; the surplus samples are dropped.)
    """
    prefs: list = []
    index: dict = {}
    slots = []
    for item in alternatives:
        if item.preference not in index:
            index[item.preference] = len(prefs)
            prefs.append(item.preference)
        slots.append((index[item.preference], item.sample))
    return BatchLayout(prefs, max((s for _, s in slots), default=0) + 1, slots)


def score_candidates(model: EditProfileReward, state: dict | None, features, context=None, mask=None) -> dict:
    """Score candidates (raw features ``features`` (m, d), each relative to the greedy target draft) for one user.

    Returns ``{"rewards": the user's reward per candidate, "win_rates": mean probability of beating each other
    candidate, "over_first": probability of beating the first candidate (the greedy target draft), "weights": the
    user's routed head weights}``.
    """
    rewards = model.score(state, features, context, mask)
    m = len(rewards)
    if m > 1:
        probs = model.pairwise_proba(state, features, context, mask)
        win_rates = (probs.sum(axis=1) - np.diag(probs)) / (m - 1)
        over_first = probs[:, 0]
    else:
        win_rates = over_first = np.ones(1)
    return {"rewards": rewards, "win_rates": win_rates, "over_first": over_first,
            "weights": model.weights(state, context)}


def select(scores: Sequence[float]) -> int:
    """Index of the highest score; ties go to the earliest candidate (the greedy target draft comes first)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("no candidates to select from")
    return int(np.argmax(scores))
