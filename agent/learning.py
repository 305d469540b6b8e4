"""The learn side of ``Agent``: accept an edit durably, learn from it exactly once (in the background through
the job queue, or at once), keep each user's reward state, and retrain the shared reward."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Sequence

from redline.policies import FEATURES_VERSION, EditProfileReward, read_pairs_jsonl, train_rewards
from redline.store import Conflict, NotFound, StoreError

from .errors import AgentError, EditConflict, InvalidInput, UnknownInteraction
from .jobs import Backoff, JobOutcome, JobRunner, renewing
from .types import EditReceipt, LearnResult, validate_user

__all__ = ["Learning"]
log = logging.getLogger(__name__)
# The retraining lease: renewed every third of it while a retraining runs, so a learner that dies mid-retraining
# holds up the next one for at most this long.
RETRAIN_LEASE_SECONDS = 60.0


def _fallback_preference(draft: str, edited: str) -> str:
    """Used only when neither the LLM nor the edit analysis named anything: a coarse description."""
    a, b = len(draft.split()), len(edited.split())
    if b < 0.8 * a:
        return "shorter, more concise text"
    if b > 1.25 * a:
        return "longer, more detailed text"
    return "reworded in the user's own words"


class Learning:
    """The learn side of ``Agent`` (which provides the store, cipher, rewards and parts it uses)."""

    def _interaction(self, interaction_id: str, tenant: str | None) -> dict:
        try:
            return self.store.interaction(interaction_id, tenant=tenant)
        except NotFound as exc:
            raise UnknownInteraction(f"unknown interaction id {interaction_id!r}") from exc

    def submit_edit(self, interaction_id: str, edited_text: str, *, tenant: str | None = None) -> EditReceipt:
        """Durably accept the user's kept text for an interaction (learning happens in ``process_edit``).

        The same text twice is accepted once; a different text afterwards raises ``EditConflict``.
        """
        self._check_text(edited_text, "edited text")
        interaction = self._interaction(interaction_id, tenant)
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
        steps: list[dict] = []
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
        edited = [step for step in steps if step["edit"]["is_edit"]]
        inferences = self.cipher.infer_many(self.generator, [
            {"task": step["interaction"]["task"], "context": step["interaction"]["context"],
             "draft": step["interaction"]["draft"], "edited": step["edit"]["edited_text"]} for step in edited])
        for step, inference in zip(edited, inferences):
            step["inference"] = inference
        for step in list(steps):
            try:
                self._learning_step(step)
            except (AgentError, StoreError) as exc:
                results[step["interaction_id"]] = exc
                steps.remove(step)
        self._reward_steps(steps)
        learned_before: list[str] = []
        written = self.store.complete_learnings([  # one transaction for the batch
            {"interaction_id": step["interaction_id"], "preference": step["preference"], "pair": step["pair"],
             "reward_state": step["router_state"], "rules": step["rules"]} for step in steps])
        for step in steps:
            iid = step["interaction_id"]
            outcome = written[iid]
            if isinstance(outcome, Conflict):  # learned concurrently by another worker: that one counts
                learned_before.append(iid)
            elif isinstance(outcome, NotFound):  # deleted meanwhile
                results[iid] = UnknownInteraction(f"interaction {iid!r} has no edit to learn from")
            else:
                step["preference_id"] = outcome
        for iid in learned_before:
            results[iid] = self._learned_result(iid)
        for step in steps:
            if step["interaction_id"] in results:
                continue
            text, kind = step["text"], step["kind"]
            log.info("learned interaction=%s cost=%d kind=%s %s", step["interaction_id"], step["base"]["cost"], kind,
                     self._texts_for_log(preference=text))
            results[step["interaction_id"]] = LearnResult(
                **step["base"], preference=text if step["preference"] else None, preference_id=step["preference_id"],
                kind=kind if step["preference"] else None, tokens_in=step["tokens_in"],
                tokens_out=step["tokens_out"], inferred_by=step["inferred_by"])
        return [results[iid] for iid in interaction_ids]

    def _learned_result(self, interaction_id: str) -> LearnResult:
        """What an already learned edit taught (``already_learned=True``)."""
        edit = self.store.edit(interaction_id)
        pref = self.store.preferences_by_id([edit["preference_id"]]).get(edit["preference_id"]) \
            if edit["preference_id"] else None
        return LearnResult(interaction_id=interaction_id, cost=edit["cost"], is_edit=bool(edit["is_edit"]),
                           preference=pref["text"] if pref else None, preference_id=edit["preference_id"],
                           kind=pref["kind"] if pref else None, already_learned=True)

    def _read_step(self, interaction_id: str) -> dict | LearnResult:
        """The interaction and its edit to learn from, or the ``LearnResult`` of an edit learned before."""
        interaction = self._interaction(interaction_id, None)
        edit = self.store.edit(interaction_id)
        if edit is None:
            raise UnknownInteraction(f"interaction {interaction_id!r} has no edit to learn from")
        if edit["learned_at"] is not None:
            return self._learned_result(interaction_id)
        return {"interaction_id": interaction_id, "interaction": interaction, "edit": edit, "inference": None}

    def _learning_step(self, step: dict) -> None:
        """Fill in what learning the step's edit will write: the preference (inferred, or the one used when the text
        was kept as it was), the pair with its features, the edit rules' evidence."""
        interaction, edit, inference = step["interaction"], step["edit"], step["inference"]
        tokens_in = tokens_out = 0
        pair = inferred_by = None
        if inference is not None:
            tokens_in, tokens_out, inferred_by = inference.prompt_tokens, inference.completion_tokens, inference.source
            text = inference.text or _fallback_preference(interaction["draft"], edit["edited_text"])
            kind = "inferred"
            pair = {"context": interaction["context"], "chosen": edit["edited_text"], "rejected": interaction["draft"],
                    "features": self.edit_features.transform([edit["edited_text"]], interaction["draft"])[0],
                    "features_version": FEATURES_VERSION, "context_vector": interaction["context_vector"]}
        else:
            text, kind = interaction["preference_used"], "accepted"
        preference = {"text": text, "kind": kind, "context_vector": interaction["context_vector"]} if text else None
        rules = self.rulebook.evidence(interaction["user_id"], step["interaction_id"],
                                       interaction["raw_draft"] or interaction["draft"],
                                       edit["edited_text"]) if self.settings.rules else None
        step.update(text=text, kind=kind, preference=preference, pair=pair, router_state=None, rules=rules,
                    tokens_in=tokens_in, tokens_out=tokens_out, inferred_by=inferred_by,
                    base=dict(interaction_id=step["interaction_id"], cost=edit["cost"], is_edit=bool(edit["is_edit"])))

    def learn(self, interaction_id: str, edited_text: str, *, tenant: str | None = None) -> LearnResult:
        """``submit_edit`` then ``process_edit``: the synchronous path (CLI, evaluation harness)."""
        self.submit_edit(interaction_id, edited_text, tenant=tenant)
        return self.process_edit(interaction_id)

    def run_jobs(self, *, limit: int | None = None, stopping: Callable[[], bool] = lambda: False,
                 context: Callable[[dict], ContextManager] | None = None,
                 on_outcome: Callable[[JobOutcome], None] | None = None, owner: str | None = None) -> list[JobOutcome]:
        """Claim (as ``owner``, default this agent's ``owner``) and learn queued edits, oldest first, with the one
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
        self.run_retrain_jobs()
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
        generator = self.generator
        answers = generator.probe() if probe else generator.last_ok > generator.last_failure
        if not answers:
            return 0
        count = self.store.jobs.retry(error_kind="generator", reset_waiting=False)
        if count:
            log.info("the generator answers again: %d learning jobs it failed are queued again", count)
        return count

    # -- the reward: per-user state and the shared retraining ------------------------------------------

    def _reward_state(self, user_id: int, model: EditProfileReward, checkpoint: str, *,
                      keep: bool = True) -> dict | None:
        """The user's reward state under ``checkpoint``: the stored one when it is current (computed under that
        checkpoint, with every stored pair of the user folded in), else replayed from the user's stored pair
        features and, with ``keep``, stored again (after a retraining, a race with one, or a deleted pair). None
        for a user without pairs: nothing learned yet."""
        stored = self.store.reward_state(user_id)
        count = self.store.count_pair_features(FEATURES_VERSION, user_id=user_id)
        if (stored is not None and stored.get("checkpoint") == checkpoint and stored.get("n") == count
                and model.valid_state(stored) is stored):
            return stored
        if count == 0:
            return None
        rows = self.store.pair_features(FEATURES_VERSION, user_id=user_id)["features"]
        state = {**model.replay(rows), "checkpoint": checkpoint}
        if keep:
            self.store.put_reward_states({user_id: state})
        return state

    def _reward_steps(self, steps: list[dict]) -> None:
        """Each step's user reward state after one online step on its pair's features, in order, so two edits of
        one user chain; nothing without a reward yet (the first retraining replays every user's state from the
        stored pairs). A state replayed here is not stored on its own: the step's state after it is, in the
        learning step's one transaction."""
        checkpoint, model = self.rewards.current_named()
        if model is None:
            return
        states: dict[int, dict] = {}
        for step in steps:
            if step["pair"] is None:
                continue
            user_id = step["interaction"]["user_id"]
            state = (states.get(user_id) or self._reward_state(user_id, model, checkpoint, keep=False)
                     or model.init_state())
            states[user_id] = step["router_state"] = {**model.update(state, step["pair"]["features"]),
                                                      "checkpoint": checkpoint}

    def maintenance(self) -> dict | None:
        """Periodic background work; the learner process calls it beside learning.

        First the retraining that hard deletes queued (``run_retrain_jobs``); else retrains the shared reward once
        ``reward_retrain_every`` new pairs arrived, when pairs it was trained on were deleted, when the published
        checkpoint cannot be read (an older redline's), or when it was trained on features of another
        ``FEATURES_VERSION`` (their rows are recomputed from the texts first). Returns the training's summary (see
        ``train_rewards``), or None when nothing was due or another process is retraining.
        """
        return self.run_retrain_jobs() or self.train_rewards()

    def run_retrain_jobs(self, *, owner: str | None = None, wait: float = 600.0) -> dict | None:
        """Claim every queued ``retrain`` job (a hard delete removed pairs the shared reward was trained on) and run
        one retraining for all of them with ``forget=True``: it reads the pairs after every claimed delete, keeps no
        older checkpoint, and removes them all when no pair is left. Waits up to ``wait`` seconds for a retraining
        another process runs (it may have read the deleted pairs; this one publishes after it). Returns the summary
        (``{"forgotten": True}`` when no pair was left), or None when no such job was queued."""
        owner = owner or self.owner
        jobs = self.store.jobs.claim(owner, limit=10_000, kind="retrain", lease_seconds=self.settings.job_lease_seconds)
        if not jobs:
            return None
        ids = [job["id"] for job in jobs]
        try:
            with renewing(lambda: self.store.jobs.renew(owner, lease_seconds=self.settings.job_lease_seconds),
                          self.settings.job_lease_seconds / 3):
                summary = self.train_rewards(forget=True, wait=wait)
        except BaseException as exc:
            self.store.jobs.mark(ids, "pending", owner=owner, error=repr(exc))
            raise
        if summary is None:  # the retraining lease stayed taken: try again later
            self.store.jobs.mark(ids, "pending", owner=owner, error="another process kept the retraining lease")
            return None
        self.store.jobs.mark(ids, "done", owner=owner)
        log.info("retrained for %d hard deletes", len(ids))
        return summary

    def _backfill_pair_features(self) -> int:
        """Compute the features of pairs stored without them (or under an older feature version), once."""
        done = 0
        while rows := self.store.pairs_without_features(FEATURES_VERSION, limit=1000):
            features = self.edit_features.transform([r["chosen"] for r in rows], [r["rejected"] for r in rows])
            self.store.set_pair_features([{**r, "features": f} for r, f in zip(rows, features)], FEATURES_VERSION)
            done += len(rows)
        return done

    def _retrain_due(self, info: dict) -> str | None:
        """Why a retraining is due without ``force`` (None: it is not)."""
        last = info.get("last_pair_id", 0)
        if self.store.count_pairs(since_id=last) >= self.settings.reward_retrain_every:
            return "new pairs"
        if info and self.rewards.current() is None and self.store.count_pairs():
            return "unreadable checkpoint"
        if info and self.store.count_pairs(until_id=last) < info.get("pairs", 0):
            return "pairs deleted"
        # A checkpoint of features defined otherwise scores this version's features wrongly (no version: the first).
        if info and info.get("features_version", 1) != FEATURES_VERSION and self.store.count_pairs():
            return "features changed"
        return None

    @contextmanager
    def _retraining_lease(self, wait: float) -> Iterator[bool]:
        """Hold the store's ``retrain`` lease (one retraining at a time across every process on the store), renewed
        while the block runs; waits up to ``wait`` seconds for it. Yields whether it is held."""
        seconds, leases = RETRAIN_LEASE_SECONDS, self.store.leases
        end = time.monotonic() + wait
        while not (held := leases.acquire("retrain", self.owner, seconds=seconds)) and time.monotonic() < end:
            time.sleep(0.2)
        if not held:
            yield False
            return
        try:
            with renewing(lambda: leases.renew("retrain", self.owner, seconds=seconds), seconds / 3):
                yield True
        finally:
            leases.release("retrain", self.owner)

    def train_rewards(self, *, force: bool = False, n_heads: int | None = None, seed: int | None = None,
                      forget: bool = False, wait: float | None = None) -> dict | None:
        """Retrain the shared reward on every stored pair's features, publish the checkpoint in the store, and
        replay every user's state under it. Without ``force`` only when due (see ``maintenance``). ``forget``: pairs
        were deleted; keep no older checkpoint, and remove them all when no pair is left (the summary then says
        ``{"forgotten": True}``). One retraining runs at a time over the store (a lease): this waits ``wait``
        seconds for another (default: none for a due retraining, ten minutes when forced or forgetting), then
        returns None without training. Returns a summary, or None when nothing was done."""
        if wait is None:
            wait = 600.0 if force or forget else 0.0
        with self._retraining_lease(wait) as held:
            if not held:
                log.info("reward retraining skipped: another process holds the retraining lease")
                return None
            info = self.rewards.current_info() or {}
            why = "forced" if force else "pairs deleted" if forget else self._retrain_due(info)
            if why is None:
                return None
            clock = time.perf_counter()
            new = self.store.count_pairs(since_id=info.get("last_pair_id", 0))
            backfilled = self._backfill_pair_features()
            data = self.store.pair_features(FEATURES_VERSION, contexts=self.settings.reward_router)
            if not data["ids"]:
                if forget:
                    self.rewards.remove_all()
                    return {"forgotten": True, "reason": why, "pairs": 0}
                return None
            read_s = time.perf_counter() - clock
            k = n_heads or self.settings.reward_heads
            trained = train_rewards(data["features"], data["user_ids"], data["contexts"], n_heads=k,
                                    seed=self.settings.reward_seed if seed is None else seed,
                                    tau=self.settings.reward_tau, mode=self.settings.reward_mode,
                                    router=self.settings.reward_router)
            last = max(data["ids"])
            meta = {"last_pair_id": last, "pairs": len(data["ids"]), "heads": k, "features_version": FEATURES_VERSION,
                    "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            # A checkpoint trained on deleted pairs (or unreadable) is not kept for a rollback.
            keep = 1 if forget or why in ("pairs deleted", "unreadable checkpoint", "features changed") else None
            name = self.rewards.publish(trained.model, meta, keep=keep)
            self.store.put_reward_states({user_id: {**state, "checkpoint": name}
                                          for user_id, state in trained.states.items()})
            summary = {"checkpoint": name, **meta, "reason": why, "new_pairs": new,
                       "users_routed": len(trained.states), "features_backfilled": backfilled,
                       "read_seconds": round(read_s, 3), "seconds": round(time.perf_counter() - clock, 3)}
            log.info("reward retrained %s", summary)
            return summary

    def import_pairs_file(self, path: str | Path, *, tenant: str = "default") -> int:
        """``import_pairs`` from a JSONL file (``policies.read_pairs_jsonl``); a bad line is ``InvalidInput``."""
        try:
            pairs = read_pairs_jsonl(path)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(str(exc)) from exc
        return self.import_pairs(pairs, tenant=tenant)

    def import_pairs(self, pairs: Sequence[dict], *, tenant: str = "default") -> int:
        """Add preference pairs ``{"context", "chosen", "rejected", "user"?}`` to the pair log with their reward
        features (and, for the router, their contexts' vectors), computed once here; returns how many."""
        if not pairs:
            return 0
        features = self.edit_features.transform([p["chosen"] for p in pairs], [p["rejected"] for p in pairs])
        vectors = self._encode([p["context"] for p in pairs]) if self.settings.reward_router else [None] * len(pairs)
        rows = []
        for p, z, vector in zip(pairs, features, vectors):
            user = p.get("user")
            rows.append({**p, "user_id": self.store.user_id(tenant, validate_user(user)) if user else None,
                         "features": z, "features_version": FEATURES_VERSION, "context_vector": vector})
        return self.store.add_pairs(rows, source="file")
