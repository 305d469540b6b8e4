"""``Agent.generate``, step by step: embed the context, retrieve the user's nearest past contexts, aggregate
their preferences into the target, plan the candidates, draft them in one batched call, apply the user's
active edit rules to every candidate, pick one with the user's routed reward, store the interaction."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from redline.policies import STRATEGIES, CandidatePlan, batch_layout, plan_candidates, score_candidates, select

from . import prompts
from .cipher import Aggregate, Retrieved
from .errors import InvalidInput
from .generators import GenerationParams, Generator
from .types import GenerateOptions, GenerateResult, check_control_chars, validate_user

__all__ = ["Generating"]
log = logging.getLogger(__name__)


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
class _Drafts:
    """The candidates of one batched generator call: ``slots[j]`` = (prompt, sample) of candidate j."""

    prompts: list[list[dict]]
    slots: list[tuple[int, int]]
    candidates: list[dict]
    tokens_in: int
    tokens_out: int


class Generating:
    """The generate side of ``Agent`` (which provides the store, cipher, rewards and parts it uses)."""

    def generate(self, user: str, context: str, task: str = "summarize", options: GenerateOptions | None = None,
                 *, tenant: str = "default") -> GenerateResult:
        """Personalized response for ``user`` on ``context``; stored as a new interaction.

        Embed the context, retrieve the user's nearest past contexts, aggregate their preferences into the
        target, plan the candidates, draft them in one batched call, apply the user's edit rules that are active
        here to every candidate, pick one with the user's routed reward, store the interaction. ``timings_ms``
        has one entry per stage.
        """
        options = options or GenerateOptions()
        params = self._validate(user, context, task, options)
        generator = self.generator  # fail fast, before anything is stored
        lap = _Laps()
        user_id = self.store.user_id(tenant, user)
        vector = self._encode([context])[0]
        lap("embed_ms")
        retrieved = self._retrieve(user_id, vector, options)
        lap("retrieve_ms")
        target = self._target_preference(user_id, retrieved, options, generator)
        lap("aggregate_ms")
        scorer, plan = self._plan(user_id, target.text, retrieved, options)
        drafts = self._draft(generator, task, context, plan, options, params)
        lap("generate_ms")
        ruled = self._apply_rules(user_id, retrieved, drafts.candidates, options)
        if ruled is not None:
            lap("rules_ms")
        best = self._choose(drafts.candidates, scorer, vector)
        if len(drafts.candidates) > 1:
            lap("score_ms")
        prompt = drafts.prompts[drafts.slots[best][0]]
        chosen = drafts.candidates[best]
        applied = [ruled[i] for i in chosen["applied_rules"]] if ruled else []
        preference = chosen["preference"]  # RPS may pick a neighbour's preference: that one was used
        neighbours = [r.to_dict() for r in retrieved]
        tokens_in, tokens_out = target.prompt_tokens + drafts.tokens_in, target.completion_tokens + drafts.tokens_out
        interaction_id = self.store.add_interaction(
            user_id, task=task, context=context, context_vector=vector, prompt=prompt,
            draft=chosen["text"], preference_used=preference,
            preference_ids=[r.preference_id for r in retrieved], neighbours=neighbours, candidates=drafts.candidates,
            strategy=options.strategy, model=generator.model_name, tokens_in=tokens_in, tokens_out=tokens_out,
            timings=lap.ms, raw_draft=chosen["raw_text"], applied_rules=chosen["applied_rules"])
        lap("store_ms")
        log.info("generate user=%s interaction=%s neighbours=%d rules=%s %s %s", user, interaction_id, len(retrieved),
                 chosen["applied_rules"], self._texts_for_log(context=context, preference=preference), lap.ms)
        return GenerateResult(interaction_id, user, task, chosen["text"], preference, neighbours,
                              prompt, drafts.candidates, options.strategy, generator.model_name, tokens_in,
                              tokens_out, lap.ms, applied)

    def _validate(self, user: str, context: str, task: str, options: GenerateOptions) -> GenerationParams:
        """The sampling parameters of a valid request; ``InvalidInput`` names what is wrong otherwise."""
        validate_user(user)
        self._check_text(context, "context")
        for turn, message in enumerate(options.history):
            check_control_chars(str(message.get("content") or ""), f"chat history message {turn}")
        if task not in prompts.TASKS:
            raise InvalidInput(f"unknown task {task!r}; choose one of: {', '.join(prompts.TASKS)}")
        if options.strategy not in STRATEGIES:
            raise InvalidInput(f"unknown strategy {options.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if options.n is not None and (not isinstance(options.n, int) or not 1 <= options.n <= 16):
            raise InvalidInput(f"n must be an integer in [1, 16], got {options.n!r}")
        return self._params(options)

    def _retrieve(self, user_id: int, vector: np.ndarray, options: GenerateOptions) -> list[Retrieved]:
        """The user's nearest past contexts, unless the call names the preference or turns retrieval off."""
        if options.preference is not None or not options.use_retrieval:
            return []
        return self.cipher.retrieve(user_id, vector)

    def _target_preference(self, user_id: int, retrieved: list[Retrieved], options: GenerateOptions,
                           generator: Generator) -> Aggregate:
        """The preference to write for: the call's explicit one, else the aggregate of the retrieved ones."""
        if options.preference is not None:
            return Aggregate(options.preference or None)
        if not options.use_preference:
            return Aggregate(None)
        return self.cipher.aggregate(user_id, retrieved, generator)

    def _plan(self, user_id: int, target: str | None, retrieved: list[Retrieved], options: GenerateOptions
              ) -> tuple[tuple | None, list[CandidatePlan]]:
        """``(scorer, plan)``: the reward heads and the user's routing weights (None at a cold start: no heads,
        or no learned edit of this user, so only the target prompt), and which preference writes each candidate."""
        model = self.rewards.current() if options.strategy != "greedy" else None
        routing = self.store.router_state(user_id) if model is not None else None
        strategy = options.strategy if routing is not None else "greedy"
        neighbours = [(f"neighbour:{r.preference_id}", r.preference)
                      for r in (retrieved if options.use_preference else [])]
        plan = plan_candidates(strategy, target, neighbours, options.n or self.settings.reward_n)
        return ((model, routing["weights"]) if routing is not None else None), plan

    def _draft(self, generator: Generator, task: str, context: str, plan: list[CandidatePlan],
               options: GenerateOptions, params: GenerationParams) -> _Drafts:
        """Every planned candidate from one batched generator call."""
        layout = batch_layout(plan)
        prompt_list = [prompts.task_prompt(task, context, pref, context_chars=self.settings.context_chars_in_prompt,
                                           history=options.history) for pref in layout.preferences]
        outs = generator.generate(prompt_list, self._params(options, layout.n) if layout.n > 1 else params)
        candidates = [{"text": outs[i].texts[j], "preference": item.preference, "source": item.source,
                       "score": None, "raw_text": None, "applied_rules": []}
                      for item, (i, j) in zip(plan, layout.slots)]
        return _Drafts(prompt_list, layout.slots, candidates, sum(o.prompt_tokens for o in outs),
                       sum(o.completion_tokens for o in outs))

    def _apply_rules(self, user_id: int, retrieved: list[Retrieved], candidates: list[dict],
                     options: GenerateOptions) -> dict[int, dict] | None:
        """The user's edit rules that are active here (counted over the same nearest past contexts the
        preferences came from) applied to every candidate, in place: a changed candidate keeps its generated
        text as ``raw_text`` and lists the ids of the rules that changed it. Returns ``{rule id: {id, kind,
        description}}`` of the rules applied, or None when rules are off (server setting or request)."""
        if not (self.settings.rules and options.rules):
            return None
        active = self.rulebook.active(user_id, [r.interaction_id for r in retrieved])
        described: dict[int, dict] = {}
        for c in candidates:
            text, applied = self.rulebook.apply(c["text"], active)
            if applied:
                c["raw_text"], c["text"], c["applied_rules"] = c["text"], text, [a.id for a in applied]
                described.update({a.id: a.to_dict() for a in applied})
        return described

    def _choose(self, candidates: list[dict], scorer: tuple | None, vector: np.ndarray) -> int:
        """Index of the candidate to answer with, each marked ``chosen`` or not: the only one, or the best under
        the user's routed reward (then each gets ``score``, its chance of beating the others, and ``reward``)."""
        best = 0
        if len(candidates) > 1:
            model, weights = scorer
            texts = [c["text"] for c in candidates]
            scored = score_candidates(model, self.reward_features, vector, self._encode(texts), texts, weights)
            for c, win, reward in zip(candidates, scored["win_rates"], scored["scores"]):
                c["score"], c["reward"] = round(float(win), 6), round(float(reward), 6)
            best = select(scored["win_rates"])
        for i, c in enumerate(candidates):
            c["chosen"] = i == best
        return best

