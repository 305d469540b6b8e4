"""The evaluation loop: for every (method, seed) stream, draft → simulated user → edit cost → learn.

``run_eval(config, ...)`` drives the agent (in process or over HTTP) exactly as the server does, writes
per-round JSONL logs, and returns the per-method results that ``evals.report`` turns into tables and plots.
In process, redline streams also get the server learner's ``train_rewards`` after each learned edit: the reward
heads are retrained every ``config.retrain_every`` new pairs, and each round's log says whether the draft
was selected by the reward (``selection``: reward / cold-start / greedy).

Every (method, seed) stream runs in its own thread, up to ``config.workers`` at once, so the generator serves them
together. The per-round logs are the run's record: ``run_eval(..., resume=True)`` continues a stopped run from them
(the same configuration only), and a stream whose store is ahead of its log (stopped between learning a round and
logging it) is rebuilt by replaying its logged rounds (from the generator cache) before it goes on.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from redline.agent import Settings, edit_cost
from redline.agent.generators.loops import loops

from .backends import HTTP_METHODS, HTTPBackend, LocalBackend
from .methods import Method
from .tasks import Document, load_documents, round_order
from .users import LLMUser, RuleUser, UserSpec, load_user_specs

__all__ = ["EvalConfig", "StreamResult", "run_eval", "results_from_logs", "PreferenceScorer", "ResumeError"]


class ResumeError(ValueError):
    """A run cannot be resumed as asked (another configuration, or logs the replay does not reproduce)."""


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
    spans: list[tuple[float, float]] = field(default_factory=list)  # per round: (start, end), seconds since epoch
    costs_if_greedy: list[int | None] = field(default_factory=list)  # per round with a choice: the greedy draft's cost
    confidences: list[float | None] = field(default_factory=list)  # per round with a choice: P(reward's pick ≻ greedy)
    loops: list[bool] = field(default_factory=list)  # per round: the draft repeats a sentence (generators.loops)
    drafted_again: list[str | None] = field(default_factory=list)  # per round: why the greedy draft was redone


RUN_ID = uuid.uuid4().hex[:8]  # a server's store outlives a run: fresh user names per run


def _user_name(method: Method, seed: int, remote: bool = False) -> str:
    return f"eval-{method.name}-s{seed}" + (f"-{RUN_ID}" if remote else "")


class _Stop(Exception):
    """Another stream failed: this one stops between rounds, its log complete up to there."""


def run_stream(backend, method: Method, seed: int, order: list[Document], config: EvalConfig, user,
               specs: dict[str, UserSpec], scorer: PreferenceScorer | None, log_path: Path,
               tick: Callable[[dict], None] = lambda row: None, *, logged: list[dict] = (), replay: bool = False,
               stop: threading.Event | None = None) -> StreamResult:
    """One simulated user's rounds for one method; appends one JSON line per round to ``log_path``.

    ``logged``: the rounds a stopped run already logged; the stream goes on after them. With ``replay`` the
    backend's store is fresh, so those rounds are first driven through it again (their generations come from the
    generator cache) and each replayed round must reproduce its logged edit, else ``ResumeError``."""
    name = _user_name(method, seed, remote=config.target is not None)
    rows = list(logged)
    with log_path.open("a", encoding="utf-8") as log:
        for t, doc in enumerate(order):
            if t < len(logged) and not replay:
                continue
            if stop is not None and stop.is_set():
                raise _Stop()
            row = _round(backend, method, seed, t, doc, config, user, specs[doc.source], scorer, name,
                         rows[t - 1]["cumulative_cost"] if t else 0)
            if t < len(logged):
                _check_replayed(row, logged[t], method, seed)
                continue
            rows.append(row)
            log.write(json.dumps(row, ensure_ascii=False) + "\n")
            log.flush()
            tick(row)
    rules = _rule_summaries(backend.rules(name)) if method.rules else None
    if rules is not None:
        _rules_path(log_path).write_text(json.dumps(rules, indent=2, ensure_ascii=False) + "\n")
    return _stream_from_rows(method.name, seed, rows, rules)


def _round(backend, method: Method, seed: int, t: int, doc: Document, config: EvalConfig, user, spec: UserSpec,
           scorer: PreferenceScorer | None, name: str, cumulative: int) -> dict:
    """One round: draft, the simulated user's edit, learning; returns its log row."""
    t0, started_at = time.perf_counter(), time.time()
    gen_seed = None if config.temperature == 0 else seed * 100_003 + t
    draft = backend.generate(name, doc.text, config.task, oracle_preference=spec.description,
                             max_tokens=config.max_tokens, temperature=config.temperature, seed=gen_seed)
    fb = user.feedback(doc.source, doc.text, draft.text)
    outcome = backend.feedback(draft.interaction_id, fb.edited)
    ok = scorer.correct(draft.preference, doc.source) if (scorer and method.infers_preferences) else None
    return {**_selection_log(draft, outcome.cost, user, doc),
        "method": method.name, "seed": seed, "round": t, "doc_id": doc.id, "source": doc.source,
        "cost": outcome.cost, "cumulative_cost": cumulative + outcome.cost, "satisfied": fb.satisfied,
        "preference_used": draft.preference, "preference_learned": outcome.preference,
        "preference_correct": ok, "selection": draft.selection, "candidates": draft.candidates,
        "chosen_source": draft.chosen_source, "chosen_kind": draft.chosen_kind,
        "differs_from_greedy": draft.differs_from_greedy, "candidate_rewards": draft.rewards,
        "distinct_candidates": draft.distinct, "heads_trained": outcome.heads_trained,
        "inferred_by": outcome.inferred_by, "applied_rules": draft.applied_rules,
        "draft_before_rules": draft.raw_text, "drafted_again": draft.drafted_again,
        "tokens_in": draft.tokens_in + outcome.tokens_in,
        "tokens_out": draft.tokens_out + outcome.tokens_out, "user_tokens": fb.tokens_in + fb.tokens_out,
        "started_at": round(started_at, 3), "wall_ms": round((time.perf_counter() - t0) * 1000, 1),
        "draft": draft.text, "edited": fb.edited,
    }


def _selection_log(draft, cost: int, user, doc: Document) -> dict:
    """For a round with a choice among candidates: the reward's confidence, whether it kept the greedy draft, the
    user's pairs, and what the greedy draft would have cost (``cost_if_greedy``: the simulated user's edit of it;
    a rule user only, whose edit costs no generator call), so a report prices the selection round by round."""
    if draft.greedy_text is None:
        return {}
    if not draft.differs_from_greedy:
        if_greedy = cost
    elif isinstance(user, RuleUser):
        if_greedy = edit_cost(draft.greedy_text, user.feedback(doc.source, doc.text, draft.greedy_text).edited)
    else:
        if_greedy = None
    return {"confidence": draft.confidence, "kept_greedy": draft.kept_greedy, "user_pairs": draft.user_pairs,
            "cost_if_greedy": if_greedy}


def _check_replayed(row: dict, logged: dict, method: Method, seed: int) -> None:
    if (row["draft"], row["edited"], row["cost"]) != (logged["draft"], logged["edited"], logged["cost"]):
        raise ResumeError(f"cannot resume {method.name} seed {seed}: replaying its logged round {row['round'] + 1} "
                          "gave another draft than the log (a generator cache that lost entries, or sampling that "
                          "is not seeded); rerun without --resume")


def _stream_from_rows(method: str, seed: int, rs: list[dict], rules: list[dict] | None) -> StreamResult:
    """A stream's results from its log rows (oldest first)."""
    return StreamResult(method, seed, [r["cost"] for r in rs], [r["source"] for r in rs],
                        [r["preference_correct"] for r in rs], sum(r["tokens_in"] for r in rs),
                        sum(r["tokens_out"] for r in rs), sum(r["user_tokens"] for r in rs),
                        round(sum(r["wall_ms"] for r in rs) / 1000, 2),
                        selections=[r.get("selection") for r in rs],
                        inferred_by=[r.get("inferred_by") for r in rs],
                        applied_rules=[r.get("applied_rules") or [] for r in rs], rules=rules,
                        differs=[r.get("differs_from_greedy") for r in rs],
                        costs_if_greedy=[r.get("cost_if_greedy") for r in rs],
                        confidences=[r.get("confidence") for r in rs],
                        loops=[loops(r["draft"]) for r in rs],
                        drafted_again=[r.get("drafted_again") for r in rs],
                        spans=[(r["started_at"], r["started_at"] + r["wall_ms"] / 1000) for r in rs
                               if r.get("started_at") is not None])


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


def _read_log(path: Path) -> list[dict]:
    """The complete rounds of a stream's log; a last line a kill cut short is dropped from the file too."""
    if not path.exists():
        return []
    rows, good = [], 0
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines(keepends=True):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
        good += len(line.encode("utf-8"))
    if good != len(text.encode("utf-8")):
        with path.open("r+b") as f:
            f.truncate(good)
    return [r for r in rows if r]


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _run_identity(config: EvalConfig, generator) -> dict:
    """What must be the same for a run to continue another's logs: everything that changes what a round does.
    ``rounds`` may grow (round orders are prefix-stable), ``workers`` and the command may change."""
    from .tasks import DATA_DIR

    d = config.to_dict()
    users = Path(config.users_file) if config.users_file else DATA_DIR / "users.yaml"
    # the agents' effective settings (environment included), less where things live and secrets
    effective = Settings(**config.local_settings()).model_dump(mode="json") if config.target is None else {}
    settings = {k: v for k, v in effective.items()
                if k not in ("data_dir", "generator_url") and "key" not in k and "secret" not in k}
    return {"task": d["task"], "methods": d["methods"], "seeds": d["seeds"], "user_model": d["user_model"],
            "users_sha256": _sha256(users), "temperature": d["temperature"], "max_tokens": d["max_tokens"],
            "target": d["target"], "settings": json.loads(json.dumps(settings, default=str)),
            "retrain_every": d["retrain_every"],
            "generator_model": getattr(generator, "model_name", None) if generator is not None else None}


def _check_resumable(out: Path, identity: dict) -> dict:
    """The earlier run's recorded identity, when it equals ``identity``; ``ResumeError`` names what differs."""
    path = out / "config.json"
    if not path.exists():
        raise ResumeError(f"nothing to resume in {out}: no config.json of an earlier run")
    recorded = json.loads(path.read_text())
    if recorded.get("runs"):
        raise ResumeError(f"the logs in {out} were gathered from several runs (--from); resume each run in its own "
                          "folder, then gather them again")
    before = recorded.get("identity")
    if before is None:
        raise ResumeError(f"cannot resume the run in {out}: its config.json predates --resume (rerun without it)")
    changed = [k for k in identity if before.get(k) != identity[k]]
    if changed:
        what = "; ".join(f"{k}: {before.get(k)!r} then, {identity[k]!r} now" for k in changed)
        raise ResumeError(f"cannot resume the run in {out} with another configuration ({what}); use the same "
                          "options, or another --out")
    return before


def run_eval(config: EvalConfig, *, embedder, generator,
             progress: Callable[[str, int], Callable[[dict], None]] | None = None, user_generator=None,
             resume: bool = False) -> dict:
    """Run every method × seed, up to ``config.workers`` streams at once; returns ``{"streams": [StreamResult...],
    "skipped": {method: reason}, "specs": ..., "config": ...}``. ``progress(method, total)`` returns a callback
    that gets each logged round's row (e.g. to move a tqdm bar). ``resume``: continue the run in ``config.out``
    from its logs (``ResumeError`` when its configuration was another). When a stream fails, the others stop
    after their current round and the failure is raised; the logs stay resumable."""
    specs = load_user_specs(config.task, config.users_file)
    documents = [d for d in load_documents(config.task) if d.source in specs]
    orders = {seed: round_order(documents, config.rounds, seed, sorted(specs)) for seed in config.seeds}
    user = build_user(config, specs, user_generator or generator)
    scorer = PreferenceScorer(embedder, specs)
    out = Path(config.out)
    identity = _run_identity(config, generator)
    if resume and config.target is not None:
        raise ResumeError("--resume works in process only: a server's users cannot be rolled back to a log")
    if resume:
        _check_resumable(out, identity)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "rules").mkdir(exist_ok=True)
    if not resume:
        for old in [*(out / "logs").glob("*.jsonl"), *(out / "rules").glob("*.json")]:  # an earlier run's would mix in
            old.unlink()
    (out / "config.json").write_text(json.dumps({**config.to_dict(), "identity": identity}, indent=2,
                                                default=str) + "\n")
    skipped: dict[str, str] = {}
    jobs = []
    for method in config.methods:
        if config.target is not None and not method.learns:
            skipped[method.name] = f"not available over HTTP (use {HTTP_METHODS})"
            continue
        tick = progress(method.name, config.rounds * len(config.seeds)) if progress else (lambda row: None)
        for seed in config.seeds:
            jobs.append((method, seed, tick))
    stop = threading.Event()

    def one(job) -> StreamResult:
        method, seed, tick = job
        log_path = out / "logs" / f"{method.name}-s{seed}.jsonl"
        logged = _read_log(log_path)[:config.rounds] if resume else []
        for row in logged:
            tick(row)
        if config.target:
            backend, replay = HTTPBackend(method, config.target, api_key=config.api_key), False
        else:
            data_dir = out / "stores" / f"{method.name}-s{seed}"
            backend, replay = _local_backend(method, seed, data_dir, logged, embedder, generator, config)
        try:
            return run_stream(backend, method, seed, orders[seed], config, user, specs, scorer, log_path, tick,
                              logged=logged, replay=replay, stop=stop)
        except BaseException:
            stop.set()
            raise
        finally:
            backend.close()

    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as pool:
        futures = [pool.submit(one, job) for job in jobs]
    failures = [f.exception() for f in futures if f.exception() is not None]
    first = next((e for e in failures if not isinstance(e, _Stop)), None)
    if first is not None:
        raise first
    streams = [f.result() for f in futures]
    (out / "skipped.json").write_text(json.dumps(skipped, indent=2) + "\n")
    return {"streams": streams, "skipped": skipped, "specs": specs, "config": config.to_dict()}


def _local_backend(method: Method, seed: int, data_dir: Path, logged: list[dict], embedder, generator,
                   config: EvalConfig) -> tuple[LocalBackend, bool]:
    """The stream's in-process backend, and whether its logged rounds must be replayed: its store is kept when it
    holds exactly the logged rounds' edits (the run stopped between rounds), else started afresh (a new run, or a
    store that learned a round its log does not have)."""
    settings = config.local_settings()
    if logged and data_dir.exists():
        backend = LocalBackend(method, data_dir, embedder=embedder, generator=generator, settings=settings)
        if backend.edit_costs(_user_name(method, seed)) == [r["cost"] for r in logged]:
            return backend, False
        backend.close()
    if data_dir.exists():  # a fresh store: learning never carries over from another run
        shutil.rmtree(data_dir)
    return LocalBackend(method, data_dir, embedder=embedder, generator=generator, settings=settings), bool(logged)


# What runs judged together must share: the documents, the users and what generates the drafts. Methods, seeds and
# the agents' settings may differ (each method sets its own), as long as no stream is in two runs.
_SHARED_BY_MERGED_RUNS = ("task", "user_model", "users_sha256", "temperature", "max_tokens", "target",
                          "generator_model")


def merge_runs(runs: list[Path | str], out: Path | str, command: str = "", task: str | None = None,
               tags: list[str | None] | None = None) -> dict:
    """Gather the logs of several runs (e.g. one process per method) into ``out`` so ``results_from_logs(out)``
    judges them as one run, paired per round. Each run must have the same task, users, generator and decoding
    (``ValueError`` names what differs) and no (method, seed) stream may be in two of them. ``tags`` (one per run,
    None for none): a tagged run's methods are judged as ``METHOD-TAG``, so two runs of one method (two versions
    of the code, two settings) are compared round by round. Writes ``out/config.json`` with the methods and seeds
    of all runs and, under ``runs``, each run's folder, tag and command; returns that config (``task``: the task the
    runs must be of). ``out`` is not resumable: resume each run in its own folder."""
    out = Path(out)
    tags = list(tags) if tags is not None else [None] * len(runs)
    if len(runs) < 2:
        raise ValueError("merging needs at least two runs")
    if len(tags) != len(runs):
        raise ValueError(f"{len(tags)} tags for {len(runs)} runs")
    for tag in tags:
        if tag is not None and not re.fullmatch(r"[\w.]+", tag):
            raise ValueError(f"a tag is letters, digits, '_' or '.', not {tag!r}")
    configs = []
    for run in map(Path, runs):
        path = run / "config.json"
        if not path.exists():
            raise ValueError(f"{run} is not a run's folder: no config.json")
        if run.resolve() == out.resolve():
            raise ValueError(f"{run} is the output folder; merge into another one")
        configs.append((run, json.loads(path.read_text())))
    first_run, first = configs[0]
    if task is not None and first.get("task") != task:
        raise ValueError(f"{first_run} is a run of the task {first.get('task')!r}, not {task!r}")
    for run, config in configs:
        if config.get("runs"):
            raise ValueError(f"{run} is itself a merge; merge the runs it lists")
    for run, config in configs[1:]:
        mine, theirs = first.get("identity") or first, config.get("identity") or config
        differs = [k for k in _SHARED_BY_MERGED_RUNS if mine.get(k) != theirs.get(k)]
        if differs:
            what = "; ".join(f"{k}: {mine.get(k)!r} in {first_run}, {theirs.get(k)!r} in {run}" for k in differs)
            raise ValueError(f"cannot judge these runs together, they differ in {what}")

    def named(method: str, tag: str | None) -> str:
        return f"{method}-{tag}" if tag else method

    # merged stream name -> (run, tag, its log, its rows); named from the rows, as results_from_logs reads them
    streams: dict[str, tuple[Path, str | None, Path, list[dict]]] = {}
    for (run, _), tag in zip(configs, tags):
        for log in sorted((run / "logs").glob("*.jsonl")):
            rows = _read_log(log)
            if not rows:
                continue
            name = f"{named(rows[0]['method'], tag)}-s{rows[0]['seed']}"
            if name in streams:
                raise ValueError(f"the stream {name} is in both {streams[name][0]} and {run}")
            streams[name] = (run, tag, log, rows)
    if not streams:
        raise ValueError(f"no round logs in {', '.join(str(r) for r, _ in configs)}")
    for sub in ("logs", "rules"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for old in (out / sub).iterdir():  # an earlier merge's streams would mix in
            old.unlink()
    for name, (run, tag, log, rows) in streams.items():
        (out / "logs" / f"{name}.jsonl").write_text(
            "".join(json.dumps({**r, "method": named(r["method"], tag)}, ensure_ascii=False) + "\n" for r in rows),
            encoding="utf-8")
        rules = run / "rules" / f"{log.stem}.json"
        if rules.exists():
            shutil.copyfile(rules, out / "rules" / f"{name}.json")
    skipped: dict[str, str] = {}
    for (run, _), tag in zip(configs, tags):
        if (run / "skipped.json").exists():
            skipped.update({named(m, tag): why for m, why in json.loads((run / "skipped.json").read_text()).items()})
    methods = list(dict.fromkeys(named(m, tag) for (_, c), tag in zip(configs, tags) for m in c["methods"]))
    merged = {**{k: v for k, v in first.items() if k != "identity"},
              "methods": methods, "seeds": sorted({s for _, c in configs for s in c["seeds"]}),
              "rounds": min(c["rounds"] for _, c in configs), "out": str(out), "command": command,
              "runs": [{"out": str(run), "tag": tag, "command": c.get("command", ""), "methods": c["methods"],
                        "seeds": c["seeds"], "rounds": c["rounds"]} for (run, c), tag in zip(configs, tags)]}
    (out / "config.json").write_text(json.dumps(merged, indent=2, default=str) + "\n")
    (out / "skipped.json").write_text(json.dumps(skipped, indent=2) + "\n")
    return merged


def results_from_logs(out: Path | str, rounds: int | None = None) -> dict:
    """Rebuild ``run_eval``'s results from ``out/logs`` (e.g. of a run stopped early), every stream cut to
    the rounds all streams completed (or to ``rounds``), so methods are compared on the same documents."""
    out = Path(out)
    config = json.loads((out / "config.json").read_text())
    rows: dict[tuple[str, int], list[dict]] = {}
    for path in sorted((out / "logs").glob("*.jsonl")):
        for r in _read_log(path):
            rows.setdefault((r["method"], r["seed"]), []).append(r)
    if not rows:
        raise ValueError(f"no round logs in {out / 'logs'}")
    common = min(len(v) for v in rows.values())
    if rounds is not None:
        common = min(common, rounds)
    streams = []
    order = {m: i for i, m in enumerate(config["methods"])}
    for (method, seed), rs in sorted(rows.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        rules_file = out / "rules" / f"{method}-s{seed}.json"
        rules = json.loads(rules_file.read_text()) if rules_file.exists() else None
        streams.append(_stream_from_rows(method, seed, sorted(rs, key=lambda r: r["round"])[:common], rules))
    skipped_path = out / "skipped.json"
    skipped = json.loads(skipped_path.read_text()) if skipped_path.exists() else {}
    config["rounds_completed"] = common
    specs = load_user_specs(config["task"], config.get("users_file"))
    return {"streams": streams, "skipped": skipped, "specs": specs, "config": config}
