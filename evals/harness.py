"""The evaluation loop: for every (method, seed) stream, draft → simulated user → edit cost → learn.

``run_eval(config, ...)`` drives the agent (in process or over HTTP) exactly as the server does, writes
per-round JSONL logs, and returns the per-method results that ``evals.report`` turns into tables and plots.
In process, redline streams also get the server worker's maintenance after each learned edit: the reward
heads are retrained every ``config.retrain_every`` new pairs, and each round's log says whether the draft
was selected by the reward (``selection``: reward / cold-start / greedy).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from redline.agent.generators.loops import loops

from .backends import HTTP_METHODS, HTTPBackend, LocalBackend
from .methods import Method
from .tasks import Document, load_documents, round_order
from .users import LLMUser, RuleUser, UserSpec, load_user_specs

__all__ = ["EvalConfig", "StreamResult", "run_eval", "results_from_logs", "PreferenceScorer"]


@dataclass
class EvalConfig:
    task: str
    methods: list[Method]
    rounds: int = 200
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    user_model: str = "rule"
    users_file: str | None = None
    out: Path = Path("results")
    workers: int = 4
    max_tokens: int | None = None
    temperature: float = 0.0
    target: str | None = None
    api_key: str | None = None
    settings: dict = field(default_factory=dict)
    command: str = ""
    # In process: the agents' reward_retrain_every (retrain the reward heads after this many new pairs), so
    # redline's selection gets heads within a short run; None keeps the settings' value. Over HTTP (target)
    # the server retrains on its own schedule and this is not used.
    retrain_every: int | None = 4

    def local_settings(self) -> dict:
        """The Settings overrides each in-process agent gets."""
        settings = dict(self.settings)
        if self.retrain_every is not None:
            settings["reward_retrain_every"] = self.retrain_every
        return settings

    def to_dict(self) -> dict:
        d = asdict(self)
        d["methods"] = [m.name for m in self.methods]
        d["out"] = str(self.out)
        return d


class PreferenceScorer:
    """Is an inferred preference closest (cosine of sentence embeddings) to the true one among the task's?"""

    def __init__(self, embedder, specs: dict[str, UserSpec]):
        self.embedder = embedder
        self.sources = list(specs)
        self.vectors = embedder.encode([specs[s].description for s in self.sources])
        self._lock = threading.Lock()
        self._cache: dict[str, int] = {}

    def closest(self, preference: str) -> str:
        with self._lock:
            if preference not in self._cache:
                v = self.embedder.encode([preference])[0]
                self._cache[preference] = int(np.argmax(self.vectors @ v))
            return self.sources[self._cache[preference]]

    def correct(self, preference: str | None, source: str) -> bool:
        return bool(preference) and self.closest(preference) == source


@dataclass
class StreamResult:
    method: str
    seed: int
    costs: list[int]
    sources: list[str]
    correct: list[bool | None]
    tokens_in: int
    tokens_out: int
    user_tokens: int
    wall_time_s: float
    error: str | None = None
    selections: list[str | None] = field(default_factory=list)  # per round: greedy, reward, cold-start, None
    inferred_by: list[str | None] = field(default_factory=list)  # per round: llm, evidence, None (nothing inferred)
    applied_rules: list[list[dict]] = field(default_factory=list)  # per round: the edit rules that changed the draft
    rules: list[dict] | None = None  # the user's edit rules at the end (None: the method has none)
    differs: list[bool | None] = field(default_factory=list)  # per round: the chosen draft is not the greedy one
    loops: list[bool] = field(default_factory=list)  # per round: the draft repeats a sentence (generators.loops)


RUN_ID = uuid.uuid4().hex[:8]  # a server's store outlives a run: fresh user names per run


def _user_name(method: Method, seed: int, remote: bool = False) -> str:
    return f"eval-{method.name}-s{seed}" + (f"-{RUN_ID}" if remote else "")


def run_stream(backend, method: Method, seed: int, order: list[Document], config: EvalConfig, user,
               specs: dict[str, UserSpec], scorer: PreferenceScorer | None, log_path: Path,
               tick: Callable[[], None] = lambda: None) -> StreamResult:
    """One simulated user's rounds for one method; appends one JSON line per round to ``log_path``."""
    name = _user_name(method, seed, remote=config.target is not None)
    costs, sources, correct, selections, inferred_by, applied, differs, looping = [], [], [], [], [], [], [], []
    tokens_in = tokens_out = user_tokens = 0
    started = time.perf_counter()
    cumulative = 0
    with log_path.open("w", encoding="utf-8") as log:
        for t, doc in enumerate(order):
            t0 = time.perf_counter()
            spec = specs[doc.source]
            gen_seed = None if config.temperature == 0 else seed * 100_003 + t
            draft = backend.generate(name, doc.text, config.task, oracle_preference=spec.description,
                                     max_tokens=config.max_tokens, temperature=config.temperature, seed=gen_seed)
            fb = user.feedback(doc.source, doc.text, draft.text)
            outcome = backend.feedback(draft.interaction_id, fb.edited)
            cumulative += outcome.cost
            ok = scorer.correct(draft.preference, doc.source) if (scorer and method.infers_preferences) else None
            tokens_in += draft.tokens_in + outcome.tokens_in
            tokens_out += draft.tokens_out + outcome.tokens_out
            user_tokens += fb.tokens_in + fb.tokens_out
            costs.append(outcome.cost)
            sources.append(doc.source)
            correct.append(ok)
            selections.append(draft.selection)
            inferred_by.append(outcome.inferred_by)
            applied.append(draft.applied_rules)
            differs.append(draft.differs_from_greedy)
            looping.append(loops(draft.text))
            log.write(json.dumps({
                "method": method.name, "seed": seed, "round": t, "doc_id": doc.id, "source": doc.source,
                "cost": outcome.cost, "cumulative_cost": cumulative, "satisfied": fb.satisfied,
                "preference_used": draft.preference, "preference_learned": outcome.preference,
                "preference_correct": ok, "selection": draft.selection, "candidates": draft.candidates,
                "chosen_source": draft.chosen_source, "chosen_kind": draft.chosen_kind,
                "differs_from_greedy": draft.differs_from_greedy, "candidate_rewards": draft.rewards,
                "distinct_candidates": draft.distinct, "heads_trained": outcome.heads_trained,
                "inferred_by": outcome.inferred_by, "applied_rules": draft.applied_rules,
                "draft_before_rules": draft.raw_text,
                "tokens_in": draft.tokens_in + outcome.tokens_in,
                "tokens_out": draft.tokens_out + outcome.tokens_out, "user_tokens": fb.tokens_in + fb.tokens_out,
                "wall_ms": round((time.perf_counter() - t0) * 1000, 1), "draft": draft.text, "edited": fb.edited,
            }, ensure_ascii=False) + "\n")
            log.flush()
            tick()
    rules = _rule_summaries(backend.rules(name)) if method.rules else None
    if rules is not None:
        _rules_path(log_path).write_text(json.dumps(rules, indent=2, ensure_ascii=False) + "\n")
    return StreamResult(method.name, seed, costs, sources, correct, tokens_in, tokens_out, user_tokens,
                        round(time.perf_counter() - started, 2), selections=selections, inferred_by=inferred_by,
                        applied_rules=applied, rules=rules, differs=differs, loops=looping)


def _rule_summaries(rules: list[dict]) -> list[dict]:
    """What the report needs of each rule the user ended with."""
    keep = ("id", "kind", "description", "support", "contradictions", "precision", "active", "enabled")
    return [{k: r.get(k) for k in keep} for r in rules]


def _rules_path(log_path: Path) -> Path:
    """``OUT/rules/<method>-s<seed>.json``: a stream's edit rules at its end, beside ``OUT/logs``."""
    return log_path.parent.parent / "rules" / log_path.with_suffix(".json").name


def build_user(config: EvalConfig, specs: dict[str, UserSpec], generator=None):
    if config.user_model == "rule":
        return RuleUser(specs)
    if config.user_model == "llm":
        if generator is None:
            raise ValueError("the llm user needs a generator")
        return LLMUser(specs, generator)
    raise ValueError(f"unknown user model {config.user_model!r}; choose rule or llm")


def run_eval(config: EvalConfig, *, embedder, generator, progress: Callable[[str, int], Callable[[], None]] | None
             = None, user_generator=None) -> dict:
    """Run every method × seed; returns ``{"streams": [StreamResult...], "skipped": {method: reason},
    "specs": ..., "config": ...}``. ``progress(method, total)`` returns a tick callback (e.g. a tqdm bar)."""
    specs = load_user_specs(config.task, config.users_file)
    documents = [d for d in load_documents(config.task) if d.source in specs]
    orders = {seed: round_order(documents, config.rounds, seed, sorted(specs)) for seed in config.seeds}
    user = build_user(config, specs, user_generator or generator)
    scorer = PreferenceScorer(embedder, specs)
    out = Path(config.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "rules").mkdir(exist_ok=True)
    for old in [*(out / "logs").glob("*.jsonl"), *(out / "rules").glob("*.json")]:  # an earlier run's would mix in
        old.unlink()
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2, default=str) + "\n")
    skipped: dict[str, str] = {}
    jobs = []
    for method in config.methods:
        if config.target is not None and not method.learns:
            skipped[method.name] = f"not available over HTTP (use {HTTP_METHODS})"
            continue
        tick = progress(method.name, config.rounds * len(config.seeds)) if progress else (lambda: None)
        for seed in config.seeds:
            jobs.append((method, seed, tick))

    def one(job) -> StreamResult:
        method, seed, tick = job
        if config.target:
            backend = HTTPBackend(method, config.target, api_key=config.api_key)
        else:
            data_dir = out / "stores" / f"{method.name}-s{seed}"
            if data_dir.exists():  # a fresh store per run: learning never carries over
                import shutil

                shutil.rmtree(data_dir)
            backend = LocalBackend(method, data_dir, embedder=embedder, generator=generator,
                                   settings=config.local_settings())
        try:
            return run_stream(backend, method, seed, orders[seed], config, user, specs, scorer,
                              out / "logs" / f"{method.name}-s{seed}.jsonl", tick)
        finally:
            backend.close()

    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool:
        streams = list(pool.map(one, jobs))
    (out / "skipped.json").write_text(json.dumps(skipped, indent=2) + "\n")
    return {"streams": streams, "skipped": skipped, "specs": specs, "config": config.to_dict()}


def results_from_logs(out: Path | str, rounds: int | None = None) -> dict:
    """Rebuild ``run_eval``'s results from ``out/logs`` (e.g. of a run stopped early), every stream cut to
    the rounds all streams completed (or to ``rounds``), so methods are compared on the same documents."""
    out = Path(out)
    config = json.loads((out / "config.json").read_text())
    rows: dict[tuple[str, int], list[dict]] = {}
    for path in sorted((out / "logs").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                rows.setdefault((r["method"], r["seed"]), []).append(r)
    if not rows:
        raise ValueError(f"no round logs in {out / 'logs'}")
    common = min(len(v) for v in rows.values())
    if rounds is not None:
        common = min(common, rounds)
    streams = []
    order = {m: i for i, m in enumerate(config["methods"])}
    for (method, seed), rs in sorted(rows.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        rs = sorted(rs, key=lambda r: r["round"])[:common]
        rules_file = out / "rules" / f"{method}-s{seed}.json"
        streams.append(StreamResult(method, seed, [r["cost"] for r in rs], [r["source"] for r in rs],
                                    [r["preference_correct"] for r in rs], sum(r["tokens_in"] for r in rs),
                                    sum(r["tokens_out"] for r in rs), sum(r["user_tokens"] for r in rs),
                                    round(sum(r["wall_ms"] for r in rs) / 1000, 2),
                                    selections=[r.get("selection") for r in rs],
                                    inferred_by=[r.get("inferred_by") for r in rs],
                                    applied_rules=[r.get("applied_rules") or [] for r in rs],
                                    rules=json.loads(rules_file.read_text()) if rules_file.exists() else None,
                                    differs=[r.get("differs_from_greedy") for r in rs],
                                    loops=[loops(r["draft"]) for r in rs]))
    skipped_path = out / "skipped.json"
    skipped = json.loads(skipped_path.read_text()) if skipped_path.exists() else {}
    config["rounds_completed"] = common
    specs = load_user_specs(config["task"], config.get("users_file"))
    return {"streams": streams, "skipped": skipped, "specs": specs, "config": config}
