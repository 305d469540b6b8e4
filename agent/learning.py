"""Learning from edits: accept an edit durably, learn from it exactly once (in the background through the job queue,
or at once) and write everything a learning step learned in one transaction."""

from __future__ import annotations

import itertools
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, ContextManager, Sequence

import numpy as np

from redline.policies import FEATURES_VERSION, EditFeatures
from redline.store import Conflict, NotFound, Store, StoreError, lost_a_race

from .config import Settings
from .edit_analysis import with_kept_items
from .editcost import EditCost
from .errors import AgentError, EditConflict, UnknownInteraction
from .generators import Generator
from .jobs import Backoff, JobOutcome, JobRunner
from .preferences import Inference, PreferenceMemory
from .reward_training import RewardTrainer
from .rulebook import Rulebook
from .types import EditReceipt, LearnResult, check_text, texts_for_log

__all__ = ["EditLearner", "LearningStep", "stored_interaction"]
log = logging.getLogger(__name__)
WRITE_ATTEMPTS = 3  # a learning step's write transaction, when it loses a race to a concurrent one


def stored_interaction(store: Store, interaction_id: str, tenant: str | None) -> dict:
    """The stored interaction (of ``tenant``'s users, or any tenant's with None), else ``UnknownInteraction``."""
    try:
        return store.interaction(interaction_id, tenant=tenant)
    except NotFound as exc:
        raise UnknownInteraction(f"unknown interaction id {interaction_id!r}") from exc


def _nearest(interaction: dict) -> float:
    """The cosine similarity of the past context nearest the interaction's (0 with none)."""
    return max((n["similarity"] for n in interaction["neighbours"] or []), default=0.0)


def _fallback_preference(draft: str, edited: str) -> str:
    """Used only when neither the LLM nor the edit analysis named anything: a coarse description."""
    a, b = len(draft.split()), len(edited.split())
    if b < 0.8 * a:
        return "shorter, more concise text"
    if b > 1.25 * a:
        return "longer, more detailed text"
    return "reworded in the user's own words"


@dataclass
class LearningStep:
    """One edit's part of a learning step: what was read (the interaction and its edit), the inference (edits above
    δ), then what learning it writes (``fill``) and the preference id the write returned."""

    interaction_id: str
    interaction: dict
    edit: dict
    inference: Inference | None = None
    text: str | None = None  # the preference learned (or the one used, for a text kept as it was)
    kind: str | None = None  # inferred or accepted
    preference: dict | None = None  # the row to store: {"text", "kind", "context_vector"}
    pair: dict | None = None  # edit ≻ draft with its reward features
    router_state: dict | None = None  # the user's reward state after the step
    rules: dict | None = None  # the edit rules' evidence (``Rulebook.evidence``), with rules on
    tokens_in: int = 0
    tokens_out: int = 0
    inferred_by: str | None = None
    preference_id: int | None = None

    @property
    def is_edit(self) -> bool:
        return bool(self.edit["is_edit"])

    @property
    def user_id(self) -> int:
        return self.interaction["user_id"]

    def inference_input(self) -> dict:
        """What ``PreferenceMemory.infer_many`` reads of this edit."""
        return {"task": self.interaction["task"], "context": self.interaction["context"],
                "draft": self.interaction["draft"], "edited": self.edit["edited_text"]}

    def write(self) -> dict:
        """The step as ``Store.complete_learnings`` takes it."""
        return {"interaction_id": self.interaction_id, "preference": self.preference, "pair": self.pair,
                "reward_state": self.router_state, "rules": self.rules}

    def result(self) -> LearnResult:
        learned = self.preference is not None
        return LearnResult(interaction_id=self.interaction_id, cost=self.edit["cost"], is_edit=self.is_edit,
                           preference=self.text if learned else None, preference_id=self.preference_id,
                           kind=self.kind if learned else None, tokens_in=self.tokens_in,
                           tokens_out=self.tokens_out, inferred_by=self.inferred_by)


class EditLearner:
    """``submit_edit`` (durable, at once), ``process_edits`` (learn, exactly once), ``run_jobs`` (the queue).

    Built on the store and settings, ``generator`` (called for the generator when inference needs it: it loads on
    first use), the user's preference ``memory``, the ``edit_cost``, the reward's ``features``, the ``rulebook``
    and the ``reward_trainer`` (the users' online steps, the retraining hard deletes queued); ``owner`` claims the
    jobs.
    """

    def __init__(self, store: Store, settings: Settings, *, generator: Callable[[], Generator],
                 memory: PreferenceMemory, edit_cost: EditCost, features: EditFeatures, rulebook: Rulebook,
                 reward_trainer: RewardTrainer, owner: str):
        self.store, self.settings, self.generator = store, settings, generator
        self.memory, self.edit_cost, self.features = memory, edit_cost, features
        self.rulebook, self.reward_trainer, self.owner = rulebook, reward_trainer, owner

    def submit_edit(self, interaction_id: str, edited_text: str, *, tenant: str | None = None) -> EditReceipt:
        """Durably accept the user's kept text for an interaction (learning happens in ``process_edit``).

        The same text twice is accepted once; a different text afterwards raises ``EditConflict``.
        """
        check_text(edited_text, "edited text", self.settings.max_text_chars)
        interaction = stored_interaction(self.store, interaction_id, tenant)
        cost = self.edit_cost(interaction["draft"], edited_text)
        try:
            row, created = self.store.submit_edit(interaction_id, edited_text, cost=cost,
                                                  is_edit=self.edit_cost.is_edit(cost))
        except Conflict as exc:
            raise EditConflict(f"interaction {interaction_id} already has a different edit") from exc
        except NotFound as exc:  # deleted meanwhile
            raise UnknownInteraction(f"unknown interaction id {interaction_id!r}") from exc
        return EditReceipt(interaction_id, row["cost"], bool(row["is_edit"]), created)

    def process_edit(self, interaction_id: str) -> LearnResult:
        """Learn from the stored edit of ``interaction_id``, exactly once (``process_edits`` of one)."""
        result = self.process_edits([interaction_id])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def process_edits(self, interaction_ids: Sequence[str]) -> list[LearnResult | AgentError | StoreError]:
        """Learn from the stored edits of several interactions, each exactly once, as one step.

        Edited (cost > δ): infer a preference from (context, draft, edit) and store it with the context
        vector, plus the pair (edit ≻ draft) with its reward features, and the user's reward state after one
        online step on them. Not edited: store the preference that was used, if any. Either way (with rules on):
        the evidence for the user's edit rules, from the draft as generated (before rules changed it) to the kept
        text, newly mined rules counted over the user's recent edits too.

        Everything is computed first (the inferences in one generator call), outside any transaction; then every
        write goes in one short transaction, which also marks each edit learned and its job done, so an edit
        another learner completed meanwhile is written by neither twice. Returns, per id, its ``LearnResult`` or
        the error that makes it unlearnable (unknown interaction, no edit); a generator that is down raises
        ``GeneratorUnavailable`` for the whole step, which then wrote nothing.
        """
        results: dict[str, LearnResult | AgentError | StoreError] = {}
        steps: list[LearningStep] = []
        for interaction_id in dict.fromkeys(interaction_ids):
            try:
                step = self._read_step(interaction_id)
            except (AgentError, StoreError) as exc:
                results[interaction_id] = exc
                continue
            if isinstance(step, LearnResult):
                results[interaction_id] = step
            else:
                steps.append(step)
        edited = [step for step in steps if step.is_edit]
        inferences = self.memory.infer_many(self.generator(), [step.inference_input() for step in edited])
        for step, inference in zip(edited, inferences):
            step.inference = inference
        for step in list(steps):
            try:
                self._fill(step)
            except (AgentError, StoreError) as exc:
                results[step.interaction_id] = exc
                steps.remove(step)
        written = self._write(steps)
        learned_before: list[str] = []
        for step in steps:
            outcome = written[step.interaction_id]
            if isinstance(outcome, Conflict):  # learned concurrently by another worker: that one counts
                learned_before.append(step.interaction_id)
            elif isinstance(outcome, NotFound):  # deleted meanwhile
                results[step.interaction_id] = UnknownInteraction(
                    f"interaction {step.interaction_id!r} has no edit to learn from")
            else:
                step.preference_id = outcome
        for iid in learned_before:
            results[iid] = self._learned_result(iid)
        for step in steps:
            if step.interaction_id in results:
                continue
            log.info("learned interaction=%s cost=%d kind=%s %s", step.interaction_id, step.edit["cost"], step.kind,
                     texts_for_log(self.settings.log_text, preference=step.text))
            results[step.interaction_id] = step.result()
        return [results[iid] for iid in interaction_ids]

    def _write(self, steps: list[LearningStep]) -> dict:
        """Each step's routing step on its user's current state, and every write in one transaction. A transaction
        that lost a race to a concurrent one (a deadlock, a serialization failure: it wrote nothing) is made again,
        on the states as they are now, at most ``WRITE_ATTEMPTS`` times: the batch's inferences are kept (running
        its jobs again, one at a time, would infer every edit a second time)."""
        for attempt in itertools.count(1):
            states = self.reward_trainer.steps([(step.user_id, step.pair["features"]) if step.pair is not None
                                                else None for step in steps])
            for step, state in zip(steps, states):
                step.router_state = state
            try:
                return self.store.complete_learnings([step.write() for step in steps])
            except Exception as exc:
                if not lost_a_race(exc) or attempt == WRITE_ATTEMPTS:
                    raise
                log.warning("writing what %d edits taught lost a race (%s: %s); writing it again (attempt %d of %d)",
                            len(steps), type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
                            attempt + 1, WRITE_ATTEMPTS)
                time.sleep(random.uniform(0.01, 0.05) * attempt)  # apart from the writer that won

    def _learned_result(self, interaction_id: str) -> LearnResult:
        """What an already learned edit taught (``already_learned=True``)."""
        edit = self.store.edit(interaction_id)
        pref = self.store.preferences_by_id([edit["preference_id"]]).get(edit["preference_id"]) \
            if edit["preference_id"] else None
        return LearnResult(interaction_id=interaction_id, cost=edit["cost"], is_edit=bool(edit["is_edit"]),
                           preference=pref["text"] if pref else None, preference_id=edit["preference_id"],
                           kind=pref["kind"] if pref else None, already_learned=True)

    def _read_step(self, interaction_id: str) -> LearningStep | LearnResult:
        """The interaction and its edit to learn from, or the ``LearnResult`` of an edit learned before."""
        interaction = stored_interaction(self.store, interaction_id, None)
        edit = self.store.edit(interaction_id)
        if edit is None:
            raise UnknownInteraction(f"interaction {interaction_id!r} has no edit to learn from")
        if edit["learned_at"] is not None:
            return self._learned_result(interaction_id)
        return LearningStep(interaction_id, interaction, edit)

    def _fill(self, step: LearningStep) -> None:
        """Fill in what learning the step's edit will write: the preference (inferred, or the one used when the text
        was kept as it was), the pair with its features, the edit rules' evidence."""
        interaction, edit, inference = step.interaction, step.edit, step.inference
        if inference is not None:
            step.tokens_in, step.tokens_out = inference.prompt_tokens, inference.completion_tokens
            step.inferred_by = inference.source
            step.text = inference.text or _fallback_preference(interaction["draft"], edit["edited_text"])
            if interaction["preference_used"] and _nearest(interaction) >= self.settings.keep_min_similarity:
                # what the kept text still does of a preference learned on texts like this one is learned too
                step.text = with_kept_items(step.text, interaction["preference_used"], edit["edited_text"])
            step.kind = "inferred"
            features: np.ndarray = self.features.transform([edit["edited_text"]], interaction["draft"])[0]
            step.pair = {"context": interaction["context"], "chosen": edit["edited_text"],
                         "rejected": interaction["draft"], "features": features, "features_version": FEATURES_VERSION,
                         "context_vector": interaction["context_vector"]}
        else:
            step.text, step.kind = interaction["preference_used"], "accepted"
        step.preference = ({"text": step.text, "kind": step.kind, "context_vector": interaction["context_vector"]}
                           if step.text else None)
        if self.settings.rules:
            step.rules = self.rulebook.evidence(step.user_id, step.interaction_id,
                                                interaction["raw_draft"] or interaction["draft"], edit["edited_text"])

    def learn(self, interaction_id: str, edited_text: str, *, tenant: str | None = None) -> LearnResult:
        """``submit_edit`` then ``process_edit``: the synchronous path (CLI, evaluation harness)."""
        self.submit_edit(interaction_id, edited_text, tenant=tenant)
        return self.process_edit(interaction_id)

    def run_jobs(self, *, limit: int | None = None, stopping: Callable[[], bool] = lambda: False,
                 context: Callable[[dict], ContextManager] | None = None,
                 on_outcome: Callable[[JobOutcome], None] | None = None, owner: str | None = None) -> list[JobOutcome]:
        """Claim (as ``owner``, default this learner's ``owner``) and learn queued edits, oldest first, with the one
        failure rule of ``JobRunner`` (the learner process calls this): a failed job backs off (30 s, fourfold each
        attempt, at most ``learn_retry_max_seconds``) and is parked after ``learn_max_attempts``. Stops early when a
        job failed (its outcome is then the last)."""
        runner = JobRunner(self.store.jobs, self.process_edit, learn_many=self.process_edits, context=context,
                           on_outcome=on_outcome, owner=owner or self.owner,
                           lease_seconds=self.settings.job_lease_seconds, max_attempts=self.settings.learn_max_attempts,
                           backoff=Backoff(cap=self.settings.learn_retry_max_seconds))
        return runner.drain(limit=limit, stopping=stopping)

    def process_pending(self, *, limit: int = 100) -> int:
        """Learn every accepted edit not yet learned (recovery after a crash), then run the retraining a hard delete
        queued, if any; returns how many edits were learned. Jobs the generator failed are queued again first when
        it answers now (``retry_generator_jobs``); the others that failed wait for their back-off to end, or for
        ``retry_learning``. A job that fails again waits (backs off, or is parked) and its error is raised. Jobs
        another learner holds are left to it."""
        self.retry_generator_jobs()
        outcomes = self.run_jobs(limit=limit)
        if outcomes and outcomes[-1].requeued:
            raise outcomes[-1].error
        self.reward_trainer.run_retrain_jobs()
        return sum(o.outcome == "learned" for o in outcomes)

    def retry_learning(self, *, tenant: str | None = None) -> int:
        """Queue again, at once and with their attempts reset, the learning jobs that are parked or wait out a
        back-off after a failure (of ``tenant``'s users; default every tenant). Returns how many."""
        count = self.store.jobs.retry(tenant=tenant)
        if count:
            log.info("%d learning jobs queued again on command%s", count, f" (tenant {tenant})" if tenant else "")
        return count

    def retry_generator_jobs(self, *, probe: bool = True) -> int:
        """When jobs wait because the generator failed (parked, or backing off) and the generator answers now (a
        one-token call, with ``probe``; else only when this process's last call to it succeeded), queue them again
        at once: parked ones with their attempts reset, the others with theirs kept (a job the generator fails on
        its own, while it answers others, is still parked in the end). Returns how many (0: none waited, or the
        generator still fails)."""
        if not self.store.jobs.failing(error_kind="generator"):
            return 0
        generator = self.generator()
        answers = generator.probe() if probe else generator.last_ok > generator.last_failure
        if not answers:
            return 0
        count = self.store.jobs.retry(error_kind="generator", reset_waiting=False)
        if count:
            log.info("the generator answers again: %d learning jobs it failed are queued again", count)
        return count
