"""How the harness reaches the agent: in process (``LocalBackend``) or over HTTP (``HTTPBackend``).

Both expose ``generate(...) -> Draft``, ``feedback(...) -> Outcome`` and ``rules(user)`` (the user's edit
rules at the end of a stream); the harness never touches generation itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from redline.agent import Agent, GenerateOptions, Settings, UnknownUser, prompts
from redline.agent.errors import embedding_errors
from redline.agent.generators import Generator, GreedyCopies, load_generator
from redline.agent.generators.cache import CachingGenerator
from redline.retrieval import Embedder

from ._batching import BatchingGenerator
from ._meter import GeneratorMeter
from ._patience import PatientGenerator
from .methods import Method

__all__ = ["Draft", "Outcome", "LocalBackend", "HTTPBackend", "BackendError", "selection_of",
           "load_embedder", "load_run_generator"]


class BackendError(RuntimeError):
    pass


@dataclass
class Draft:
    interaction_id: str
    text: str
    preference: str | None
    tokens_in: int
    tokens_out: int
    selection: str | None = None  # see selection_of
    candidates: int = 1
    chosen_source: str | None = None  # target, or neighbour:<preference id> when RPS picked a neighbour's
    applied_rules: list[dict] = field(default_factory=list)  # [{id, kind, description}] that changed the text
    raw_text: str | None = None  # the text as generated, when edit rules changed it
    chosen_kind: str | None = None  # greedy, sample or revision
    differs_from_greedy: bool | None = None  # None without a choice (one candidate)
    rewards: list | None = None  # each candidate's reward under the user's reward (None without a choice)
    distinct: int | None = None  # distinct candidate texts
    greedy_text: str | None = None  # the greedy target draft (after rules), when there was a choice
    confidence: float | None = None  # the reward's P(its best candidate ≻ the greedy draft)
    kept_greedy: bool | None = None  # the greedy draft was kept for want of that confidence
    user_pairs: int | None = None  # the user's pairs in their reward state when it chose
    drafted_again: str | None = None  # why the greedy draft was drafted again without the preference (None: not)


@dataclass
class Outcome:
    cost: int
    preference: str | None
    tokens_in: int = 0
    tokens_out: int = 0
    heads_trained: dict | None = None  # the new checkpoint (name, pairs, heads) when train_rewards retrained the heads
    inferred_by: str | None = None  # llm or evidence: whether the generator's answer became the preference


def selection_of(strategy: str, candidates: list[dict] | None) -> str | None:
    """How the agent picked the draft, from the candidates it returned:

    - ``greedy``: the method asks for one text (no selection);
    - ``reward``: several candidates scored by the user's routed reward (reward heads and a routing state existed);
    - ``cold-start``: a selection strategy was asked for, but no candidate was scored (no reward heads yet, or
      no routing state for this user), so the agent fell back to the target prompt only;
    - ``None``: unknown (a server whose response carries no candidates).
    """
    if strategy == "greedy":
        return "greedy"
    if candidates is None:
        return None
    return "reward" if any(c.get("score") is not None for c in candidates) else "cold-start"


def _choice(candidates: list[dict] | None, selection: dict | None) -> dict:
    """What a round's log records of the choice: the chosen candidate's source and kind, the text it had before
    edit rules, whether it differs from the greedy target draft, every candidate's reward, how many distinct texts
    there were; the greedy draft, the reward's confidence in its pick, whether the greedy draft was kept for want of
    it, and the user's pairs."""
    chosen = next((c for c in candidates or () if c.get("chosen")), {})
    selection = selection or {}
    return {"chosen_source": chosen.get("source"), "chosen_kind": chosen.get("kind"),
            "raw_text": chosen.get("raw_text"),
            "differs_from_greedy": selection.get("differs_from_greedy"),
            "rewards": [c.get("reward") for c in candidates] if selection else None,
            "distinct": selection.get("distinct"),
            "greedy_text": candidates[0]["text"] if selection else None,
            "confidence": selection.get("confidence"), "kept_greedy": selection.get("kept_greedy"),
            "user_pairs": selection.get("user_pairs"),
            "drafted_again": (candidates or [{}])[0].get("drafted_again")}


def load_embedder(settings: Settings) -> Embedder:
    """The configured embedder for a run, loaded now (a failure to load is ``EmbeddingUnavailable``) and shared by
    its threads: its micro-batcher already runs one model call at a time for every caller."""
    embedder = Embedder(settings.embedding_model, dtype=settings.embedding_dtype)
    with embedding_errors():
        embedder.dim  # loads the model
    return embedder


def load_run_generator(settings: Settings, *, cache_path: Path | None, down_wait: float = 600.0,
                       notify: Callable[[str], None] | None = None) -> tuple[Generator, GeneratorMeter]:
    """The configured generator for a run, and its meter (fresh tokens and calls): the workers' concurrent calls
    batched (in process; a server back-end batches concurrent requests itself), a server's time-outs and restarts
    waited out (``PatientGenerator``: a server that does not answer for ``down_wait`` seconds ends the run),
    outputs cached in SQLite at ``cache_path`` (None: no cache), greedy requests for several texts answered with
    copies (``GreedyCopies``, above the cache, so best-of-n / RPS at temperature 0 reuse greedy drafts)."""
    # A run's simulated users are all one batch job: learning's inferences need not wait behind their drafts, and
    # a request may queue behind every other stream's on a loaded machine.
    backend = load_generator(settings.model_copy(update={
        "generator_background_wait": 0.0, "generator_timeout": max(settings.generator_timeout, 1200.0)}))
    meter = GeneratorMeter(backend)
    generator: Generator = meter
    if settings.generator in ("transformers", "vllm"):
        generator = BatchingGenerator(generator)
    generator = PatientGenerator(generator, getattr(backend, "alive", None), down_wait=down_wait, notify=notify)
    if cache_path is not None:
        generator = CachingGenerator(generator, cache_path)
    return GreedyCopies(generator), meter


def _options(method: Method, *, preference: str | None, history: list[dict], max_tokens: int | None,
             temperature: float | None, seed: int | None) -> GenerateOptions:
    kwargs = dict(max_tokens=max_tokens, temperature=temperature, seed=seed, history=history,
                  use_retrieval=method.use_retrieval, strategy=method.strategy, rules=method.rules,
                  use_preference=method.use_preference)
    if method.n is not None:
        kwargs["n"] = method.n
    if method.oracle:
        kwargs["preference"] = preference
    return GenerateOptions(**kwargs)


class LocalBackend:
    """One fresh Agent (own data dir and store) for one (method, seed) stream; shared embedder and generator.

    It drives the agent as the server does: after each learned edit of a method that selects with a reward
    (``redline*``), ``agent.train_rewards()`` (what the server's learner calls after learning jobs)
    retrains the reward heads once ``settings["reward_retrain_every"]`` new pairs arrived. Greedy methods
    never read the heads, so their streams skip it (each stream has its own store and heads). Methods without
    edit rules run with the agent's ``rules`` setting off: neither learned nor applied.
    """

    def __init__(self, method: Method, data_dir: Path, *, embedder, generator, settings: dict | None = None):
        self.method = method
        overrides = dict(settings or {})
        overrides.update(data_dir=data_dir, k=method.k, rules=method.rules, aggregation=method.aggregation)
        self.agent = Agent(Settings(**overrides), embedder=embedder, generator=generator)

    def generate(self, user: str, context: str, task: str, *, oracle_preference: str | None = None,
                 max_tokens: int | None = None, temperature: float | None = None, seed: int | None = None) -> Draft:
        history: list[dict] = []
        if self.method.icl_k:
            history = prompts.icl_edit_history(self.agent.nearest_edits(user, context, self.method.icl_k))
        result = self.agent.generate(user, context, task, _options(
            self.method, preference=oracle_preference, history=history, max_tokens=max_tokens,
            temperature=temperature, seed=seed))
        return Draft(result.interaction_id, result.text, result.preference, result.tokens_in, result.tokens_out,
                     selection_of(self.method.strategy, result.candidates), len(result.candidates),
                     applied_rules=result.applied_rules, **_choice(result.candidates, result.selection))

    def feedback(self, interaction_id: str, edited: str) -> Outcome:
        if self.method.learns:
            r = self.agent.learn(interaction_id, edited)
            trained = None
            if self.method.strategy != "greedy":
                summary = self.agent.train_rewards()
                if summary is not None:  # a new checkpoint was published
                    trained = {"name": summary["checkpoint"], "pairs": summary["pairs"], "heads": summary["heads"]}
            return Outcome(r.cost, r.preference, r.tokens_in, r.tokens_out, heads_trained=trained,
                           inferred_by=r.inferred_by)
        receipt = self.agent.submit_edit(interaction_id, edited)
        return Outcome(receipt.cost, None)

    def edit_costs(self, user: str) -> list[int]:
        """The costs of the user's stored edits, oldest first (none for a user the store does not know)."""
        try:
            return [e["cost"] for e in self.agent.edit_history(user)]
        except UnknownUser:
            return []

    def rules(self, user: str) -> list[dict]:
        """The user's edit rules as ``GET /v1/users/{user}/preferences`` lists them (active first)."""
        return self.agent.rules(user) if self.method.rules else []

    def close(self) -> None:
        self.agent.close()


HTTP_METHODS = ("cipher-K (the server's configured k), redline, redline-rps, redline-best_of_n, redline-no-rules, "
                "rules-only")


class HTTPBackend:
    """The same calls against a running redline server: ``POST /v1/generate``, then
    ``POST /v1/interactions/{id}/edit``; learning runs in the server's learner process, so after each edit
    the backend waits (polling ``GET /v1/interactions/{id}``) until the edit is learned, keeping the
    protocol's order: learn from round t before drafting round t+1.

    Only what the API offers can be evaluated this way: CIPHER with the server's ``k`` and its selection
    strategies. no-learning, oracle and ICL-edit need options the API does not expose.
    """

    def __init__(self, method: Method, base_url: str, *, api_key: str | None = None, timeout: float = 600.0,
                 learn_timeout: float = 300.0, client=None):
        import httpx

        if not method.learns:
            raise BackendError(f"method {method.name} is not available over HTTP; use {HTTP_METHODS}")
        self.method = method
        self.learn_timeout = learn_timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)

    def _request(self, verb: str, path: str, body: dict | None = None) -> dict:
        import httpx

        try:
            resp = self.client.request(verb, path, json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot reach the redline server: {exc}") from exc
        if resp.status_code >= 400:
            raise BackendError(f"{path} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def generate(self, user: str, context: str, task: str, *, oracle_preference: str | None = None,
                 max_tokens: int | None = None, temperature: float | None = None, seed: int | None = None) -> Draft:
        body = {"user": user, "context": context, "task": task, "strategy": self.method.strategy}
        if not self.method.rules:
            body["rules"] = False
        if not self.method.use_preference:
            body["use_preference"] = False
        for key, value in (("max_tokens", max_tokens), ("temperature", temperature), ("seed", seed),
                           ("n", self.method.n if self.method.strategy != "greedy" else None)):
            if value is not None:
                body[key] = value
        data = self._request("POST", "/v1/generate", body)
        usage = data.get("usage") or {}
        candidates = data.get("candidates")
        return Draft(data["interaction_id"], data["text"], data.get("preference"), usage.get("prompt_tokens", 0),
                     usage.get("completion_tokens", 0), selection_of(self.method.strategy, candidates),
                     len(candidates) if candidates is not None else 1,
                     applied_rules=data.get("applied_rules") or [], **_choice(candidates, data.get("selection")))

    def feedback(self, interaction_id: str, edited: str) -> Outcome:
        data = self._request("POST", f"/v1/interactions/{interaction_id}/edit", {"edited_text": edited})
        return Outcome(int(data["cost"]), self._wait_learned(interaction_id))

    def _wait_learned(self, interaction_id: str) -> str | None:
        """The preference the server learned from the interaction's edit (None: it taught none), once learned."""
        import time

        deadline = time.monotonic() + self.learn_timeout
        while True:
            learning = self._request("GET", f"/v1/interactions/{interaction_id}")["learning"]
            if learning["status"] == "learned":
                return (learning["preference"] or {}).get("text")
            if learning["status"] == "parked":
                raise BackendError(f"the server could not learn the edit of {interaction_id}: {learning['error']}")
            if time.monotonic() > deadline:
                raise BackendError(f"the server did not learn the edit of {interaction_id} within "
                                   f"{self.learn_timeout:.0f} s")
            time.sleep(0.1)

    def rules(self, user: str) -> list[dict]:
        """The user's edit rules on the server (``GET /v1/users/{user}/preferences``)."""
        if not self.method.rules:
            return []
        return self._request("GET", f"/v1/users/{user}/preferences?limit=1").get("rules") or []

    def close(self) -> None:
        self.client.close()
