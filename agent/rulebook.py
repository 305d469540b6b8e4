"""Each user's learned edit rules over the store: the evidence an edit adds (in the learning step), the rules
active for a new context (the user's k nearest past contexts, the same CIPHER retrieves), applying them to
drafts, and what the user reads and changes (turn a rule on or off, rewrite its text, delete it).

The rules themselves (kinds, mining, evidence, application) are ``agent.rules``: pure and deterministic; where a
rule that does not hold everywhere applies is also learned from the contexts of its evidence (``agent.rule_scope``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from redline.store import Conflict, NotFound, Store

from .config import Settings
from .errors import InvalidRule, RuleConflict, UnknownRule
from .rule_scope import RuleScope, ScopeCache
from .rules import Counts, Rule, RuleEvidence, Thresholds, active_here, apply_rules, rule_from_dict, update_evidence

__all__ = ["Rulebook", "ActiveRule", "UNCHANGED"]
log = logging.getLogger(__name__)

UNCHANGED = object()  # ``update(enabled=UNCHANGED)`` leaves the user's override as it is


@dataclass(frozen=True)
class ActiveRule:
    """A stored rule that applies in the current context."""

    id: int
    rule: Rule

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.rule.kind, "description": self.rule.describe()}


def _rule(row: dict) -> Rule | None:
    """The rule a stored row describes; None (and a warning) for a row this version cannot read."""
    try:
        return rule_from_dict(row)
    except ValueError as exc:
        log.warning("rule %s is unreadable and ignored: %s", row["id"], exc)
        return None


def _evidence(row: dict, rule: Rule) -> RuleEvidence:
    return RuleEvidence(rule, support=row["support"], contradictions=row["contradictions"], enabled=row["enabled"])


def _row_of(rule: Rule) -> dict:
    return {"key": rule.key, "kind": rule.kind, "params": rule.params, "text": rule.text}


# A scope from fewer supporting edits than rules_min_support needs at least this many edits in which the user had
# the chance and left it: one made against one left is a coin flip for a third kind of text. Replaying the
# 2026-12-06 night rule-user runs edit by edit (every verdict predicted from the earlier ones; 12 runs, 10 stopped
# early), the scopes of whole-text rules made once would have applied 77 fixes the user made and 58 they did not;
# with two or more left chances 63 and 1.
SCOPE_MIN_LEFT = 2


class Rulebook:
    """``agent.rulebook``; every call names the user by their store id (the agent resolved tenant and name)."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.thresholds = Thresholds(settings.rules_min_support, settings.rules_min_precision,
                                     settings.rules_local_chance)
        self.history = settings.rules_history
        self.prune_after = settings.rules_prune_after
        self.scoped = settings.rules_scope
        self.scope_min_support = settings.rules_scope_min_support
        self._scopes = ScopeCache()

    # -- learning ---------------------------------------------------------------------------------

    def evidence(self, user_id: int, interaction_id: str, draft: str, kept: str) -> dict:
        """What one edit teaches, for ``Store.complete_learning(rules=...)``: the rules newly mined from
        ``draft`` (the text as generated, before rules changed it) → ``kept``, counted over the user's recent
        edits as well, and this edit's verdict on every rule of the user (a rule that fired and was kept is
        support, one the user undid a contradiction)."""
        by_key: dict[str, RuleEvidence] = {}
        for row in self.store.rules.list(user_id):
            rule = _rule(row)
            if rule is not None:
                by_key[rule.key] = _evidence(row, rule)
        known = set(by_key)
        history = self.store.rules.history(user_id, limit=self.history) if self.history else []
        made = update_evidence(by_key, draft, kept, interaction_id, history=history)
        return {"new_rules": [_row_of(ev.rule) for key, ev in by_key.items() if key not in known],
                "observations": [(o.key, o.interaction_id, o.supported) for o in made],
                "prune_after": self.prune_after}

    # -- generating -------------------------------------------------------------------------------

    def active(self, user_id: int, neighbour_interactions: list[str | None],
               context_vector: np.ndarray | None = None) -> list[ActiveRule]:
        """The user's rules that apply to a context whose nearest past contexts are ``neighbour_interactions``:
        the user's override wins; otherwise a rule applies when it is active among those neighbours, or when
        it is active over all the user's edits and no neighbour contradicted it (see ``rules.active_here``), or,
        given the ``context_vector`` (and ``rules_scope`` on), when its scope expects the fix here
        (``agent.rule_scope``) and it has the support to be active but not the precision, or for a rule that shapes
        the whole text (not a word choice), ``rules_scope_min_support`` supporting edits (one by default: where the
        user opens every summary of one kind with a line, the edit of the first one is the evidence) against at
        least ``SCOPE_MIN_LEFT`` left chances. Best first
        (locally supported, then expected, then precise, then often seen), as exclusive rules need."""
        rows = self.store.rules.list(user_id)
        if not rows:
            return []
        local = self.store.rules.counts_over(user_id, [i for i in neighbour_interactions if i])
        chosen, undecided = [], []
        for row in rows:
            rule = _rule(row)
            if rule is None:
                continue
            here = Counts(*local[row["id"]]) if row["id"] in local else None
            evidence = _evidence(row, rule)
            if active_here(evidence, here, self.thresholds):
                chosen.append((row, rule, here, 0.0))
            elif evidence.enabled is None and (
                    evidence.support >= self.thresholds.min_support
                    or (not rule.word_choice and evidence.support >= self.scope_min_support
                        and evidence.contradictions >= SCOPE_MIN_LEFT)):
                undecided.append((row, rule, here))
        if undecided and context_vector is not None and self.scoped:
            scopes = self._scopes_of(user_id, [row for row, _, _ in undecided])
            for row, rule, here in undecided:
                scope = scopes.get(row["id"])
                if scope is not None and (score := scope.score(context_vector)) > 0:
                    chosen.append((row, rule, here, score))
        ranked = sorted(chosen, key=lambda c: ((c[0]["enabled"] is True, c[2].support if c[2] else 0, c[3],
                                                 _evidence(c[0], c[1]).precision, c[0]["support"]), -c[0]["id"]),
                        reverse=True)
        return [ActiveRule(row["id"], rule) for row, rule, _, _ in ranked]

    def _scopes_of(self, user_id: int, rows: list[dict]) -> dict[int, RuleScope | None]:
        """Each rule's scope, fitted on its observations once per change of them (the cache key holds its counts
        and update time, which every new observation or rewrite changes)."""
        out, missing = {}, []
        for row in rows:
            key = (user_id, row["id"], row["support"], row["contradictions"], row["updated_at"])
            found, scope = self._scopes.get(key)
            if found:
                out[row["id"]] = scope
            else:
                missing.append((row["id"], key))
        if missing:
            observed = self.store.rules.observed_contexts(user_id, [rid for rid, _ in missing])
            for rid, key in missing:
                scope = RuleScope.fit(*observed[rid]) if rid in observed else None
                self._scopes.put(key, scope)
                out[rid] = scope
        return out

    @staticmethod
    def apply(text: str, active: list[ActiveRule], document: str | None = None) -> tuple[str, list[ActiveRule]]:
        """``text`` with the active rules applied (fixed order, idempotent) and the rules that changed it; none that
        would leave nothing of the ``document`` it answers (see ``rules.apply_rules``)."""
        if not active:
            return text, []
        by_key = {a.rule.key: a for a in active}
        new, applied = apply_rules(text, [a.rule for a in active], document)
        return new, [by_key[r.key] for r in applied]

    # -- what the user reads and changes ----------------------------------------------------------

    def describe(self, user_id: int) -> list[dict]:
        """The user's rules as they read them: what each does, its evidence and precision on their edits, the
        edits that taught it, whether it is active; active ones first, then by support."""
        taught = self.store.rules.taught_by(user_id)
        out = []
        for row in self.store.rules.list(user_id):
            rule = _rule(row)
            if rule is None:
                continue
            evidence = _evidence(row, rule)
            out.append({
                "id": row["id"], "kind": rule.kind, "params": rule.params, "text": rule.text,
                "description": rule.describe(), "support": row["support"], "contradictions": row["contradictions"],
                "precision": round(evidence.precision, 4), "active": evidence.active(self.thresholds),
                "enabled": row["enabled"], "origin": row["origin"], "taught_by": taught.get(row["id"], []),
                "first_seen": row["first_seen"], "last_seen": row["last_seen"], "created_at": row["created_at"],
                "updated_at": row["updated_at"]})
        return sorted(out, key=lambda r: (not r["active"], -r["support"], r["id"]))

    def update(self, user_id: int, rule_id: int, *, enabled: object = UNCHANGED, text: str | None = None) -> dict:
        """Switch a rule on or off (``enabled`` True/False; None: the evidence decides again) and/or rewrite
        its text (``Rule.with_text``: the replacement, phrase, line or limit). A rewritten rule is the user's
        own and is counted again over their recent edits. Returns the rule as ``describe`` shows it."""
        try:
            row = self.store.rules.get(user_id, rule_id)
        except NotFound as exc:
            raise UnknownRule(f"unknown rule id {rule_id}") from exc
        new_row = observations = None
        if text is not None:
            rule = _rule(row)
            if rule is None:
                raise InvalidRule(f"rule {rule_id} cannot be rewritten by this version; delete it instead")
            try:
                new = rule.with_text(str(text))
            except ValueError as exc:
                raise InvalidRule(str(exc)) from exc
            history = self.store.rules.history(user_id, limit=self.history) if self.history else []
            observations = [(iid, verdict) for iid, draft, kept in history
                            if (verdict := new.followed(draft, kept)) is not None]
            new_row = _row_of(new)
        try:
            override = {} if enabled is UNCHANGED else {"enabled": enabled}
            self.store.rules.update(user_id, rule_id, rule=new_row, observations=observations, **override)
        except NotFound as exc:  # deleted meanwhile
            raise UnknownRule(f"unknown rule id {rule_id}") from exc
        except Conflict as exc:
            raise RuleConflict(f"the user already has this rule: {exc}") from exc
        return next(r for r in self.describe(user_id) if r["id"] == rule_id)

    def delete(self, user_id: int, rule_id: int) -> None:
        """Forget a rule and its evidence (later edits making the same fix teach it again; turn it off to keep
        it off)."""
        try:
            self.store.rules.delete(user_id, rule_id)
        except NotFound as exc:
            raise UnknownRule(f"unknown rule id {rule_id}") from exc
