"""What a user's edits say about each of their rules: support and contradictions, when a rule is active over all
their edits, and when it applies in one context (among the nearest past contexts). Pure counting; ``agent.rules``
makes the observations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from ._rule_kinds import Rule

__all__ = ["Thresholds", "Counts", "Observation", "RuleEvidence", "chance_of", "active_here"]


@dataclass(frozen=True)
class Thresholds:
    """When a rule is active: at least ``min_support`` supporting edits and a precision (support over
    support plus contradictions) of at least ``min_precision``. A rule that is not active over all the user's
    edits but is among the nearest contexts applies there only if so much support that near would be a chance
    at most ``local_chance`` given the user's overall precision (one-sided binomial test)."""

    min_support: int = 2
    min_precision: float = 0.8
    local_chance: float = 0.05

    def __post_init__(self):
        if self.min_support < 1:
            raise ValueError("min_support must be at least 1")
        if not 0.0 <= self.min_precision <= 1.0:
            raise ValueError("min_precision must be between 0 and 1")
        if not 0.0 < self.local_chance <= 1.0:
            raise ValueError("local_chance must be above 0 and at most 1")


@dataclass(frozen=True)
class Counts:
    support: int = 0
    contradictions: int = 0

    @property
    def precision(self) -> float:
        seen = self.support + self.contradictions
        return self.support / seen if seen else 0.0

    def active(self, thresholds: Thresholds = Thresholds()) -> bool:
        return self.support >= thresholds.min_support and self.precision >= thresholds.min_precision


@dataclass(frozen=True)
class Observation:
    """One interaction's verdict on one rule: the row phase 2 stores per (rule, interaction)."""

    key: str
    interaction_id: str
    supported: bool


@dataclass
class RuleEvidence:
    """A rule and what the user's edits said about it. ``enabled`` is the user's override (None: the
    thresholds decide)."""

    rule: Rule
    support: int = 0
    contradictions: int = 0
    supported_by: list[str] = field(default_factory=list)       # provenance: the edits that taught it
    contradicted_by: list[str] = field(default_factory=list)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    enabled: bool | None = None

    @property
    def counts(self) -> Counts:
        return Counts(self.support, self.contradictions)

    @property
    def precision(self) -> float:
        return self.counts.precision

    def active(self, thresholds: Thresholds = Thresholds()) -> bool:
        return self.enabled if self.enabled is not None else self.counts.active(thresholds)

    def record(self, supported: bool, interaction_id: str, when: datetime) -> None:
        if supported:
            self.support += 1
            self.supported_by.append(interaction_id)
        else:
            self.contradictions += 1
            self.contradicted_by.append(interaction_id)
        self.first_seen = self.first_seen or when
        self.last_seen = when


def chance_of(local: Counts, precision: float) -> float:
    """How likely at least ``local.support`` of the ``local`` verdicts would be support if each were support
    with probability ``precision`` (the user's overall precision): the one-sided binomial tail."""
    n, k = local.support + local.contradictions, local.support
    return sum(math.comb(n, x) * precision ** x * (1 - precision) ** (n - x) for x in range(k, n + 1))


def active_here(overall: RuleEvidence, local: Counts | None, thresholds: Thresholds = Thresholds()) -> bool:
    """Whether a rule applies in one context. ``local`` counts the rule over the k nearest past contexts.

    - The user's override wins (``enabled`` True/False).
    - A rule that holds everywhere (active over all the user's edits) applies unless a neighbour
      contradicted it (and the neighbours do not make it active after all); with no local evidence either
      way it applies.
    - A rule that does not hold everywhere applies where it is active among the neighbours, and only if that
      is unlikely to be chance given how often the user makes the fix overall (``Thresholds.local_chance``):
      a fix the user makes on one kind of text, not a fix they make now and then.
    """
    if overall.enabled is not None:
        return overall.enabled
    local = local or Counts()
    if overall.counts.active(thresholds):
        return local.contradictions == 0 or local.active(thresholds)
    return local.active(thresholds) and chance_of(local, overall.precision) <= thresholds.local_chance
