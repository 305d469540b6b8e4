"""The generation pipeline behind ``Agent.generate``, step by step: embed the context, retrieve the user's nearest
past contexts, aggregate their preferences into the target, draft the greedy target and (for best-of-n / RPS) the
alternatives, apply the user's active edit rules to every candidate, pick one with the user's reward, store the
interaction."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from redline import text as tx
from redline.policies import (
    STRATEGIES,
    CandidatePlan,
    EditFeatures,
    EditProfileReward,
    batch_layout,
    plan_candidates,
    score_candidates,
    select,
)
from redline.retrieval import Embedder
from redline.store import Store

from . import prompts
from .config import Settings
from .errors import InvalidInput, encode
from .generators import Generation, GenerationParams, Generator, stream_generation
from .generators.loops import LoopGuard, cut_loop, stutters
from .preferences import Aggregate, PreferenceMemory, Retrieved
from .reward_training import RewardTrainer
from .rulebook import Rulebook
from .types import (
    GenerateOptions,
    GenerateResult,
    StreamStart,
    TextDelta,
    check_control_chars,
    check_text,
    texts_for_log,
    validate_user,
)

__all__ = ["GenerationPipeline", "Candidate"]
log = logging.getLogger(__name__)


def _without_content(draft: str, preference: str | None, context: str) -> str | None:
    """Why ``draft``, written for ``preference`` on ``context``, holds nothing of the document a user could keep, or
    None."""
    if tx.frame_lines_only(draft):
        return "frame lines only"
    if prompts.echoes_preference(draft, preference):
        return "the preference written back"
    if stutters(draft):
        return "one phrase over and over"
    if tx.ignores_document(draft, context):
        return "nothing of the document"
    return None


class _Laps:
    """Milliseconds per named stage, each measured from the end of the previous one."""

    def __init__(self):
        self.ms: dict[str, float] = {}
        self._clock = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = round((now - self._clock) * 1000, 2)
        self._clock = now


@dataclass
class Candidate:
    """One drafted response: its ``text`` (after the user's edit rules; ``raw_text`` as generated when they changed
    it, with the ids of the rules that did in ``applied_rules``), the ``preference`` that wrote it and where that
    came from (``source``), its ``kind`` (greedy, revision, sample), and once the reward chose among several, its
    ``score`` (its chance of beating the others) and ``reward``; ``chosen`` marks the one returned.
    ``drafted_again`` says why the greedy draft written for the preference was thrown away and this one written
    without it (frame lines only, the preference written back, one phrase over and over, nothing of the document);
    None when it was not."""

    text: str
    preference: str | None
    source: str
    kind: str
    score: float | None = None
    raw_text: str | None = None
    applied_rules: list[int] = field(default_factory=list)
    reward: float | None = None
    chosen: bool = False
    drafted_again: str | None = None

    def to_dict(self) -> dict:
        """As results and the stored interaction show it (``reward`` only once scored)."""
        out = {"text": self.text, "preference": self.preference, "source": self.source, "kind": self.kind,
               "score": self.score, "raw_text": self.raw_text, "applied_rules": self.applied_rules,
               "drafted_again": self.drafted_again}
        if self.reward is not None:
            out["reward"] = self.reward
        return {**out, "chosen": self.chosen}


@dataclass
class _Drafts:
    """The candidates of one request: the greedy target draft first, then the alternatives (one batched call);
    ``prompt_of[j]`` indexes the prompt that wrote candidate j."""

    prompts: list[list[dict]]
    prompt_of: list[int]
    candidates: list[Candidate]
    tokens_in: int
    tokens_out: int
    mode: str | None = None  # samples or revisions when there are alternatives
    seed: int | None = None  # the alternatives' sampling seed


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


class GenerationPipeline:
    """``generate`` and ``generate_stream``: one request from the context to the stored interaction.

    Built on the store and settings, the ``embedder``, ``generator`` (called for the generator: it loads on first
    use), the user's preference ``memory``, the ``reward_trainer`` (the users' states, read only), the ``rulebook``
    and the reward's ``features``.
    """

    def __init__(self, store: Store, settings: Settings, *, embedder: Embedder, generator: Callable[[], Generator],
                 memory: PreferenceMemory, reward_trainer: RewardTrainer, rulebook: Rulebook,
                 features: EditFeatures):
        self.store, self.settings, self.embedder, self.generator = store, settings, embedder, generator
        self.memory, self.reward_trainer = memory, reward_trainer
        self.rulebook, self.features = rulebook, features

    def generate(self, user: str, context: str, task: str = "summarize", options: GenerateOptions | None = None,
                 *, tenant: str = "default") -> GenerateResult:
        """Personalized response for ``user`` on ``context``; stored as a new interaction.

        Embed the context, retrieve the user's nearest past contexts, aggregate their preferences into the
        target, draft the greedy target (and, for best-of-n / RPS with a trained reward and a user who has
        taught it, the alternatives in one more batched call), apply the user's edit rules that are active here
        to every candidate, pick one with the user's reward, store the interaction. ``timings_ms`` has one entry
        per stage; ``selection`` says what the choice was.
        """
        for event in self._generating(user, context, task, options or GenerateOptions(), tenant, stream=False):
            pass
        return event

    def generate_stream(self, user: str, context: str, task: str = "summarize",
                        options: GenerateOptions | None = None, *, tenant: str = "default"
                        ) -> Iterator[StreamStart | TextDelta | GenerateResult]:
        """``generate``, as it happens: a ``StreamStart`` (the interaction id, the preference, whether text deltas
        follow), then the chosen draft's ``TextDelta``s as the generator decodes them, then the ``GenerateResult``.

        Deltas follow only when one candidate is drafted (greedy, or best-of-n / RPS at a cold start): with several,
        the reward chooses once all exist, and the text comes with the result. The user's edit rules apply to the
        whole text at the end: with ``StreamStart.rules_may_rewrite`` the result's ``text`` may differ from the
        deltas (``applied_rules`` says how), and it is the text to show. Invalid input raises before the first
        event; a generator that fails raises ``GeneratorUnavailable`` from the iterator, and nothing is stored.
        Closing the iterator early stops the decoding and stores nothing.
        """
        events = self._generating(user, context, task, options or GenerateOptions(), tenant, stream=True)
        first = next(events)  # validation errors raise here, before the caller commits to a stream
        return itertools.chain([first], events)

    def _generating(self, user: str, context: str, task: str, options: GenerateOptions, tenant: str, *,
                    stream: bool) -> Iterator[StreamStart | TextDelta | GenerateResult]:
        params = self._validate(user, context, task, options)
        generator = self.generator()  # fail fast, before anything is stored
        lap = _Laps()
        user_id = self.store.user_id(tenant, user)
        vector = encode(self.embedder, [context])[0]
        lap("embed_ms")
        retrieved = self._retrieve(user_id, vector, options)
        lap("retrieve_ms")
        target = self._target_preference(user_id, retrieved, options, generator)
        lap("aggregate_ms")
        scorer, plan = self._plan(user_id, target.text, retrieved, options)
        active = self._active_rules(user_id, retrieved, vector, options)
        interaction_id = uuid.uuid4().hex
        neighbours = [r.to_dict() for r in retrieved]
        yield StreamStart(interaction_id, user, task, options.strategy, target.text, neighbours,
                          generator.model_name, streams=stream and len(plan) == 1, rules_may_rewrite=bool(active))
        drafts = yield from self._draft(generator, task, context, plan, options, params, user_id, lap,
                                        stream=stream and len(plan) == 1)
        lap("alternatives_ms" if len(plan) > 1 else "generate_ms")
        ruled = self._apply_rules(active, drafts.candidates, context)
        if ruled is not None:
            lap("rules_ms")
        selection = self._choose(drafts, scorer, vector)
        best = selection["chosen"] if selection else 0
        if selection:
            lap("score_ms")
        prompt = drafts.prompts[drafts.prompt_of[best]]
        chosen = drafts.candidates[best]
        applied = [ruled[i] for i in chosen.applied_rules] if ruled else []
        preference = chosen.preference  # RPS may pick a neighbour's preference: that one was used
        tokens_in, tokens_out = target.prompt_tokens + drafts.tokens_in, target.completion_tokens + drafts.tokens_out
        candidates = [c.to_dict() for c in drafts.candidates]
        self.store.add_interaction(
            user_id, task=task, context=context, context_vector=vector, prompt=prompt,
            draft=chosen.text, preference_used=preference,
            preference_ids=[r.preference_id for r in retrieved], neighbours=neighbours, candidates=candidates,
            strategy=options.strategy, model=generator.model_name, tokens_in=tokens_in, tokens_out=tokens_out,
            timings=lap.ms, raw_draft=chosen.raw_text, applied_rules=chosen.applied_rules,
            interaction_id=interaction_id)
        lap("store_ms")
        log.info("generate user=%s interaction=%s neighbours=%d candidates=%d differs_from_greedy=%s rules=%s %s %s",
                 user, interaction_id, len(retrieved), len(candidates),
                 selection["differs_from_greedy"] if selection else None, chosen.applied_rules,
                 texts_for_log(self.settings.log_text, context=context, preference=preference), lap.ms)
        yield GenerateResult(interaction_id, user, task, chosen.text, preference, neighbours,
                             prompt, candidates, options.strategy, generator.model_name, tokens_in,
                             tokens_out, lap.ms, applied, selection=selection)

    def _validate(self, user: str, context: str, task: str, options: GenerateOptions) -> GenerationParams:
        """The sampling parameters of a valid request; ``InvalidInput`` names what is wrong otherwise."""
        validate_user(user)
        check_text(context, "context", self.settings.max_text_chars)
        for turn, message in enumerate(options.history):
            check_control_chars(str(message.get("content") or ""), f"chat history message {turn}")
        if task not in prompts.TASKS:
            raise InvalidInput(f"unknown task {task!r}; choose one of: {', '.join(prompts.TASKS)}")
        if options.strategy not in STRATEGIES:
            raise InvalidInput(f"unknown strategy {options.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if options.n is not None and (not isinstance(options.n, int) or not 1 <= options.n <= 16):
            raise InvalidInput(f"n must be an integer in [1, 16], got {options.n!r}")
        return self.params(options)

    def params(self, options: GenerateOptions, n: int = 1) -> GenerationParams:
        """The request's sampling parameters: its own, else the configured ones; ``InvalidInput`` when invalid."""
        try:
            return GenerationParams(
                n=n, temperature=self.settings.temperature if options.temperature is None else options.temperature,
                max_tokens=options.max_tokens or self.settings.max_tokens,
                seed=self.settings.seed if options.seed is None else options.seed)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc

    def _retrieve(self, user_id: int, vector: np.ndarray, options: GenerateOptions) -> list[Retrieved]:
        """The user's nearest past contexts, unless the call names the preference or turns retrieval off."""
        if options.preference is not None or not options.use_retrieval:
            return []
        return self.memory.retrieve(user_id, vector)

    def _target_preference(self, user_id: int, retrieved: list[Retrieved], options: GenerateOptions,
                           generator: Generator) -> Aggregate:
        """The preference to write for: the call's explicit one, else the aggregate of the retrieved ones."""
        if options.preference is not None:
            return Aggregate(options.preference or None)
        if not options.use_preference:
            return Aggregate(None)
        return self.memory.aggregate(user_id, retrieved, generator)

    def _plan(self, user_id: int, target: str | None, retrieved: list[Retrieved], options: GenerateOptions
              ) -> tuple[tuple[EditProfileReward, dict] | None, list[CandidatePlan]]:
        """``(scorer, plan)``: the reward and the user's state (None at a cold start: no trained reward, or fewer
        than ``reward_min_pairs`` learned pairs of this user, so only the greedy target draft: alternatives cost
        the user an exploration the reward cannot yet choose among), and which preference writes each candidate."""
        scorer = None
        if options.strategy != "greedy":
            reward = self.reward_trainer.user_reward(user_id)  # read only: a stale state is replayed, not stored
            enough = reward is not None and reward[1]["n"] >= max(1, self.settings.reward_min_pairs)
            scorer = reward if enough else None
        strategy = options.strategy if scorer is not None else "greedy"
        neighbours = [(f"neighbour:{r.preference_id}", r.preference)
                      for r in (retrieved if options.use_preference else [])]
        return scorer, plan_candidates(strategy, target, neighbours, options.n or self.settings.reward_n)

    def _task_prompt(self, task: str, context: str, preference: str | None, options: GenerateOptions) -> list[dict]:
        return prompts.task_prompt(task, context, preference, context_chars=self.settings.context_chars_in_prompt,
                                   history=options.history)

    def _alternatives_seed(self, options: GenerateOptions, user_id: int, context: str, target: str | None) -> int:
        """The alternatives' sampling seed: from the request's (or the configured) seed, else from the request's
        content, so a temperature-0 request stays reproducible (and cacheable) end to end."""
        base = options.seed if options.seed is not None else self.settings.seed
        if base is not None:
            return (base * 1_000_003 + 1) % 2**31  # not the greedy call's seed
        digest = hashlib.sha1(f"{user_id}\0{target}\0{context}".encode()).digest()
        return int.from_bytes(digest[:4], "big") >> 1

    def _draft(self, generator: Generator, task: str, context: str, plan: list[CandidatePlan],
               options: GenerateOptions, params: GenerationParams, user_id: int, lap: _Laps, *, stream: bool
               ) -> Iterator[TextDelta]:
        """The greedy target draft (the request's own parameters; with ``stream`` its deltas are yielded as they
        decode), then every alternative in ONE batched call at the candidate temperature: samples of the task
        prompt, or revisions of the greedy draft (``reward_candidates``). Returns the ``_Drafts``."""
        target = plan[0]
        prompt_list = [self._task_prompt(task, context, target.preference, options)]
        if stream:
            greedy = yield from self._stream_draft(generator, prompt_list[0], params)
        else:
            greedy = self._without_echo_or_loop(generator.generate(prompt_list, params)[0])
        preference, spent = target.preference, (0, 0)
        empty = None if stream or not preference else _without_content(greedy.texts[0], preference, context)
        if empty:
            # a small generator asked for a preference sometimes writes its lines alone ('Thanks for reading!'), the
            # preference itself as the text ('Subject: Ask questions; begin with ...'), one phrase until max_tokens
            # ('The movie about the movie about ...') or a line any document would fit ("Here's the story."): nothing
            # of the document a user could keep. Draft without the preference; the user's rules still add their
            # lines. (A streamed draft was already shown.)
            log.info("draft was %s (%r): drafting again without the preference", empty, greedy.texts[0][:80])
            spent = (greedy.prompt_tokens, greedy.completion_tokens)
            preference, prompt_list = None, [self._task_prompt(task, context, None, options)]
            greedy = self._without_echo_or_loop(generator.generate(prompt_list, params)[0])
        drafts = _Drafts(prompt_list, [0], [Candidate(greedy.texts[0], preference, target.source, "greedy",
                                                      drafted_again=empty)],
                         greedy.prompt_tokens + spent[0], greedy.completion_tokens + spent[1])
        alternatives = plan[1:]
        if not alternatives:
            return drafts
        lap("generate_ms")
        layout = batch_layout(alternatives)
        drafts.mode = self.settings.reward_candidates
        if drafts.mode == "revisions":
            more = [prompts.revision_prompt(greedy.texts[0], pref, draft_chars=self.settings.context_chars_in_prompt)
                    for pref in layout.preferences]
        else:
            more = [self._task_prompt(task, context, pref, options) for pref in layout.preferences]
        drafts.seed = self._alternatives_seed(options, user_id, context, target.preference)
        outs = generator.generate(more, dataclasses.replace(
            params, n=layout.n, temperature=self.settings.reward_candidate_temperature, seed=drafts.seed))
        kind = "revision" if drafts.mode == "revisions" else "sample"
        outs = [self._without_echo_or_loop(o) for o in outs]
        # an alternative with nothing of the document is never offered against a greedy draft with something of it:
        # a reward that learned form alone may rank it first. (When the greedy draft has nothing either, e.g. at a
        # max_tokens too small for any content, the choice among them stays the reward's.)
        screen = _without_content(greedy.texts[0], preference, context) is None
        dropped = []
        for item, (i, j) in zip(alternatives, layout.slots):
            text = outs[i].texts[j]
            empty = _without_content(text, item.preference, context) if screen else None
            if empty:
                dropped.append(empty)
                continue
            drafts.candidates.append(Candidate(text, item.preference, item.source, kind))
            drafts.prompt_of.append(len(prompt_list) + i)
        if dropped:
            log.info("%d of %d alternatives held nothing of the document (%s): not offered to the reward",
                     len(dropped), len(alternatives), ", ".join(sorted(set(dropped))))
        drafts.prompts = prompt_list + more
        drafts.tokens_in += sum(o.prompt_tokens for o in outs)
        drafts.tokens_out += sum(o.completion_tokens for o in outs)
        return drafts

    def _active_rules(self, user_id: int, retrieved: list[Retrieved], vector: np.ndarray, options: GenerateOptions
                      ) -> list | None:
        """The user's edit rules that are active here (counted over the same nearest past contexts the preferences
        came from, and scoped by this context's vector); None when rules are off (server setting or request)."""
        if not (self.settings.rules and options.rules):
            return None
        return self.rulebook.active(user_id, [r.interaction_id for r in retrieved], vector)

    def _stream_draft(self, generator: Generator, prompt: list[dict], params: GenerationParams
                      ) -> Iterator[TextDelta]:
        """Stream one draft's deltas; with the loop guard on, a sentence that may repeat an earlier one is held back
        until it differs, and a repeat stops the decoding (closing the stream) before it is shown. Returns the
        ``Generation`` (its text cut at the repeat; completion tokens counted as the deltas received then)."""
        guard = LoopGuard() if self.settings.loop_guard == "cut" else None
        pieces = stream_generation(generator, prompt, params)
        received, generation = 0, None
        try:
            for piece in pieces:
                if not isinstance(piece, str):
                    generation = piece
                    break
                received += 1
                shown = guard.feed(piece) if guard else piece
                if shown:
                    yield TextDelta(shown)
                if guard and guard.looping:
                    break
        finally:
            pieces.close()  # stops the decoding when the loop guard cut the draft
        if guard and guard.looping:
            log.info("loop guard: stopped a draft at its first repeated sentence after %d deltas", received)
            return Generation([guard.text], prompt_tokens=0, completion_tokens=received, extra={"loop_cut": True})
        if guard and (rest := guard.finish()):
            yield TextDelta(rest)
        return generation

    def _without_echo_or_loop(self, generation: Generation) -> Generation:
        """``generation`` with every text cut where it starts writing back the prompt's instructions, and at its
        first repeated sentence (the loop guard, unless off). A streamed draft is shown as it decodes: only the
        loop guard applies to it."""
        texts = [prompts.without_echo(t) for t in generation.texts]
        generation.texts = [cut_loop(t) for t in texts] if self.settings.loop_guard == "cut" else texts
        return generation

    def _apply_rules(self, active: list | None, candidates: list[Candidate], context: str) -> dict[int, dict] | None:
        """The ``active`` rules applied to every candidate (none that would leave nothing of the ``context``), in
        place: a changed candidate keeps its generated text as ``raw_text`` and lists the ids of the rules that
        changed it. Returns ``{rule id: {id, kind, description}}`` of the rules applied, or None when rules are
        off."""
        if active is None:
            return None
        described: dict[int, dict] = {}
        for c in candidates:
            text, applied = self.rulebook.apply(c.text, active, context)
            if applied:
                c.raw_text, c.text, c.applied_rules = c.text, text, [a.id for a in applied]
                described.update({a.id: a.to_dict() for a in applied})
        return described

    def _choose(self, drafts: _Drafts, scorer: tuple | None, vector: np.ndarray) -> dict | None:
        """Mark each candidate ``chosen`` or not: the only one, or the best under the user's reward, every candidate
        scored relative to the greedy target draft (form features only for independent samples); then each gets
        ``reward`` and ``score`` (its chance of beating the others), all after the user's edit rules. The best
        replaces the greedy draft only when the reward expects the user to prefer it with a probability above
        ``reward_min_confidence`` (``confidence``; else ``kept_greedy``). Returns the selection (None without a
        choice): ``{"mode", "chosen", "differs_from_greedy", "distinct", "candidate_temperature", "seed",
        "confidence", "kept_greedy", "user_pairs"}``."""
        candidates = drafts.candidates
        best, selection = 0, None
        if len(candidates) > 1:
            model, state = scorer
            greedy = candidates[0].text
            features = self.features.transform([c.text for c in candidates], greedy)
            mask = self.features.form_mask if drafts.mode == "samples" else None
            scored = score_candidates(model, state, features, vector, mask)
            rewards = np.where([bool(c.text.strip()) for c in candidates], scored["rewards"], -np.inf)
            for c, win, reward in zip(candidates, scored["win_rates"], scored["rewards"]):
                c.score, c.reward = round(float(win), 6), round(float(reward), 6)
            best = select(rewards)
            confidence = float(scored["over_first"][best]) if best else None
            kept = confidence is not None and confidence <= self.settings.reward_min_confidence
            if kept:
                best = 0
            selection = {"mode": drafts.mode, "chosen": best,
                         "differs_from_greedy": not _same_text(candidates[best].text, greedy),
                         "distinct": len({" ".join(c.text.split()) for c in candidates}),
                         "candidate_temperature": self.settings.reward_candidate_temperature, "seed": drafts.seed,
                         "confidence": None if confidence is None else round(confidence, 9), "kept_greedy": kept,
                         "user_pairs": int(state["n"])}
        for i, c in enumerate(candidates):
            c.chosen = i == best
        return selection
