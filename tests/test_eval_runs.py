"""Evaluation runs that survive: a generator server that times out, goes down and comes back; runs stopped (killed)
and resumed from their logs; streams that reach the generator together; paired comparisons and claims."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from redline.agent import GenerationParams, GeneratorUnavailable
from redline.agent.generators.openai_backend import OpenAIGenerator
from redline.evals._patience import GeneratorGone, PatientGenerator

from conftest import HashEmbedder
from doubles import ScriptedGenerator

PROMPT = [{"role": "user", "content": "Say hi"}]
TIMING = ("wall_ms", "started_at")


def _respond(prompt, i):
    content = prompt[-1]["content"]
    if "Combine them" in content or "describe the writing style" in content:
        return "brief bullet points, one short sentence each"
    words = [w for w in content.split() if w.isalpha()][-12:]
    return "The text says " + " ".join(words) + ". It has details that matter a great deal!"


class ScriptedServer:
    """An OpenAI-compatible server as an httpx transport (answers and counts tokens as ``ScriptedGenerator``), with
    switches: ``down`` (every
    request: connection refused), ``slow`` (chat requests time out while /models answers), ``down_after`` (go down
    after this many chat answers), ``up_after`` (come back after this many refused chat requests); counts
    ``answered``."""

    def __init__(self, respond=_respond):
        self.respond = respond
        self.down = self.slow = False
        self.down_after: int | None = None
        self.up_after: int | None = None
        self.answered = self.refused = 0
        self.lock = threading.Lock()

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            if self.down_after is not None and self.answered >= self.down_after:
                self.down, self.down_after = True, None
            if self.down and request.url.path.endswith("/chat/completions"):
                self.refused += 1
                if self.up_after is not None and self.refused >= self.up_after:
                    self.down = False
            if self.down:
                raise httpx.ConnectError("connection refused", request=request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "scripted"}]})
        if self.slow:
            raise httpx.ReadTimeout("timed out", request=request)
        body = json.loads(request.content)
        if body.get("max_tokens", 1) > 4000:
            return httpx.Response(400, json={"error": {"message": "max_tokens is too large"}})
        texts = [self.respond(body["messages"], i) for i in range(body.get("n", 1))]
        with self.lock:
            self.answered += 1
        return httpx.Response(200, json={"choices": [{"index": i, "message": {"content": t}}
                                                     for i, t in enumerate(texts)],
                                         "usage": {"prompt_tokens": sum(len(m["content"].split())
                                                                        for m in body["messages"]),
                                                   "completion_tokens": sum(len(t.split()) for t in texts)}})

    def generator(self, **kwargs) -> OpenAIGenerator:
        return OpenAIGenerator("http://scripted/v1", "scripted", retries=0, backoff=0.0,
                               transport=httpx.MockTransport(self.handle), **kwargs)


def _patient(server: ScriptedServer, **kwargs) -> PatientGenerator:
    backend = server.generator()
    messages: list[str] = []
    gen = PatientGenerator(backend, backend.alive, first_wait=0.001, max_wait=0.01, notify=messages.append,
                           **kwargs)
    gen.messages = messages
    return gen


# -- waiting for the generator ---------------------------------------------------------------------------------

def test_a_busy_server_is_waited_for_without_limit():
    server = ScriptedServer()
    server.slow = True
    gen = _patient(server, down_wait=0.0)  # down_wait does not apply: the server answers /models

    def recover():
        time.sleep(0.3)
        server.slow = False

    threading.Thread(target=recover).start()
    assert gen.generate([PROMPT], GenerationParams())[0].texts
    assert gen.retries >= 2 and gen.messages[0].startswith("generator busy (generator at http://scripted/v1 is "
                                                           "unreachable or failing: timed out)")
    assert gen.messages[-1] == "generator answering again; the run continues"


def test_a_server_that_comes_back_is_waited_for_and_one_that_is_gone_ends_the_call():
    server = ScriptedServer()
    server.down, server.up_after = True, 5
    gen = _patient(server, down_wait=30.0)
    assert gen.generate([PROMPT], GenerationParams())[0].texts and server.refused == 5
    assert gen.messages == ["generator not answering (generator at http://scripted/v1 is unreachable or failing: "
                            "connection refused); waiting up to 30 s for it",
                            "generator answering again; the run continues"]
    server.down, server.up_after = True, None
    clock = iter(range(0, 1000, 7))
    gen = _patient(server, down_wait=20.0, clock=lambda: next(clock))
    with pytest.raises(GeneratorGone, match=r"^the generator did not answer for 21 s \(waited up to 20 s; last error: "
                                            r"generator at http://scripted/v1 is unreachable or failing: connection "
                                            r"refused\)$"):
        gen.generate([PROMPT], GenerationParams())


def test_a_refusal_and_an_in_process_failure_are_not_waited_for():
    server = ScriptedServer()
    gen = _patient(server)
    with pytest.raises(GeneratorUnavailable, match=r"rejected the request \(400\)"):
        gen.generate([PROMPT], GenerationParams(max_tokens=5000))
    assert gen.retries == 0
    scripted = ScriptedGenerator()
    scripted.down = True
    with pytest.raises(GeneratorUnavailable, match="scripted generator is down"):
        PatientGenerator(scripted, None).generate([PROMPT], GenerationParams())


def test_alive_asks_the_server_once():
    server = ScriptedServer()
    assert server.generator().alive()
    server.down = True
    assert not server.generator().alive()
    gone = OpenAIGenerator("http://x/v1", "m", transport=httpx.MockTransport(lambda r: httpx.Response(502)))
    assert not gone.alive()


# -- runs that go on -----------------------------------------------------------------------------------------

METHODS = "no-learning,cipher-1,redline,rules-only"


def _config(out: Path, rounds: int = 6, workers: int = 4, methods: str = METHODS, **kwargs):
    from redline.evals.harness import EvalConfig
    from redline.evals.methods import parse_methods

    return EvalConfig(task="summarize", methods=parse_methods(methods), rounds=rounds, seeds=[0, 1], out=out,
                      workers=workers, retrain_every=2, **kwargs)


def _logs(out: Path) -> dict:
    """Every stream's log rows without what differs between two runs of the same rounds (timings, checkpoint
    names)."""
    logs = {}
    for path in sorted((out / "logs").glob("*.jsonl")):
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        for r in rows:
            for key in TIMING:
                r.pop(key)
            if r["heads_trained"]:
                r["heads_trained"].pop("name")
        logs[path.name] = rows
    return logs


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the run with nothing going wrong."""
    from redline.evals.harness import run_eval

    out = tmp_path_factory.mktemp("uninterrupted")
    run_eval(_config(out), embedder=HashEmbedder(), generator=ScriptedGenerator(_respond))
    return _logs(out)


def test_a_generator_that_goes_down_and_comes_back_mid_run(tmp_path, uninterrupted):
    from redline.evals.harness import run_eval

    server = ScriptedServer()
    server.down_after, server.up_after = 40, 25  # down after 40 answers, back after 25 refused calls
    gen = _patient(server, down_wait=60.0)
    run_eval(_config(tmp_path), embedder=HashEmbedder(), generator=gen)
    assert server.refused >= 25 and not server.down
    assert "generator not answering" in gen.messages[0]
    assert _logs(tmp_path) == uninterrupted


def test_a_generator_gone_for_good_stops_the_run_resumably(tmp_path, uninterrupted):
    from redline.evals.harness import run_eval

    server = ScriptedServer()
    server.down_after = 40
    with pytest.raises(GeneratorGone):
        run_eval(_config(tmp_path), embedder=HashEmbedder(), generator=_patient(server, down_wait=0.2))
    done = {name: len(rows) for name, rows in _logs(tmp_path).items()}
    assert 0 < sum(done.values()) < 8 * 6  # some rounds logged, not all
    server.down = False
    run_eval(_config(tmp_path), embedder=HashEmbedder(), generator=server.generator(), resume=True)
    assert _logs(tmp_path) == uninterrupted


KILLED_RUN = """
import sys, time
sys.path.insert(0, {tests!r})
from conftest import HashEmbedder
from test_eval_runs import _config, _respond
from redline.evals.harness import run_eval
from doubles import ScriptedGenerator

class Slow(ScriptedGenerator):
    def generate(self, prompts, params):
        time.sleep(0.02)
        return super().generate(prompts, params)

run_eval(_config(__import__("pathlib").Path({out!r})), embedder=HashEmbedder(), generator=Slow(_respond))
"""


def test_a_killed_run_resumes_to_the_same_logs(tmp_path, uninterrupted):
    """kill -9 in the middle of a run, then --resume: the same logs as the run that was never stopped (streams
    killed between rounds go on from their store; one killed inside a round is rebuilt from its log)."""
    from redline.evals.harness import run_eval

    out = tmp_path / "out"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parent)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        logged = sum(len(p.read_text().splitlines()) for p in (out / "logs").glob("*.jsonl")) \
            if (out / "logs").exists() else 0
        if logged >= 16:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = {name: len(rows) for name, rows in _logs(out).items()}
    assert 16 <= sum(killed.values()) < 48, killed
    run_eval(_config(out), embedder=HashEmbedder(), generator=ScriptedGenerator(_respond), resume=True)
    assert _logs(out) == uninterrupted


def test_a_store_ahead_of_its_log_is_rebuilt_from_the_log(tmp_path, uninterrupted):
    """Stopped after learning a round but before logging it: the stream's store has an edit its log has not, so
    the resume replays the logged rounds into a fresh store (from the generator cache) and goes on."""
    from redline.agent.generators.cache import CachingGenerator
    from redline.evals.harness import run_eval

    inner = ScriptedGenerator(_respond)
    gen = CachingGenerator(inner, tmp_path / "cache.sqlite")
    run_eval(_config(tmp_path, rounds=4), embedder=HashEmbedder(), generator=gen)
    log = tmp_path / "logs" / "redline-s0.jsonl"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:3]) + '{"method": "redline", "se')  # cut
    calls = len(inner.calls)
    run_eval(_config(tmp_path), embedder=HashEmbedder(), generator=gen, resume=True)
    assert _logs(tmp_path) == uninterrupted
    replayed = [p for ps, _ in inner.calls[calls:] for p in ps]
    assert replayed  # rounds 5-6 (and the replay's missing round 4) were generated, rounds 1-3 came from the cache


def test_a_replay_that_differs_from_the_log_refuses(tmp_path):
    from redline.evals.harness import ResumeError, run_eval

    run_eval(_config(tmp_path, rounds=3, methods="cipher-1"), embedder=HashEmbedder(),
             generator=ScriptedGenerator(_respond))
    log = tmp_path / "logs" / "cipher-1-s1.jsonl"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:2]))
    other = ScriptedGenerator(lambda p, i: "Another draft altogether. It differs from the first one.")
    with pytest.raises(ResumeError, match=r"^cannot resume cipher-1 seed 1: replaying its logged round 1 gave "
                                          r"another draft than the log"):
        run_eval(_config(tmp_path, rounds=3, methods="cipher-1"), embedder=HashEmbedder(), generator=other,
                 resume=True)


def test_resume_refuses_another_configuration(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from redline.cli import cli
    from redline.evals.harness import ResumeError, run_eval

    run_eval(_config(tmp_path, rounds=2, methods="no-learning"), embedder=HashEmbedder(),
             generator=ScriptedGenerator(_respond))
    with pytest.raises(ResumeError, match=r"^cannot resume the run in .* with another configuration \(methods: "
                                          r"\['no-learning'\] then, \['cipher-1'\] now\); use the same options, or "
                                          r"another --out$"):
        run_eval(_config(tmp_path, rounds=2, methods="cipher-1"), embedder=HashEmbedder(),
                 generator=ScriptedGenerator(_respond), resume=True)
    monkeypatch.setenv("REDLINE_REWARD_MIN_PAIRS", "3")  # a setting from the environment counts too
    with pytest.raises(ResumeError, match=r"another configuration \(settings: .*'reward_min_pairs': 8.* then, "
                                          r".*'reward_min_pairs': 3"):
        run_eval(_config(tmp_path, rounds=2, methods="no-learning"), embedder=HashEmbedder(),
                 generator=ScriptedGenerator(_respond), resume=True)
    with pytest.raises(ResumeError, match="^nothing to resume in .*: no config.json of an earlier run$"):
        run_eval(_config(tmp_path / "none", rounds=2), embedder=HashEmbedder(),
                 generator=ScriptedGenerator(_respond), resume=True)
    res = CliRunner().invoke(cli, ["eval", "--task", "summarize", "--out", str(tmp_path), "--resume", "--target",
                                   "http://x"])
    assert res.exit_code == 1 and "--resume works for in-process runs of summarize and email only" in res.output


# -- streams side by side ------------------------------------------------------------------------------------

def test_every_stream_reaches_a_server_generator_at_once(tmp_path):
    """A server back-end gets the streams' calls concurrently (no in-process batching queue in between), up to
    --workers at once; the report says how many calls were in flight and the method's wall time."""
    from redline.agent import Settings
    from redline.evals import backends
    from redline.evals.harness import run_eval
    from redline.evals.report import summarize

    together = threading.Barrier(4, timeout=30)  # the first four calls meet here: only if they come at once
    calls = 0
    lock = threading.Lock()

    class Counting(ScriptedGenerator):
        def generate(self, prompts, params):
            nonlocal calls
            with lock:
                calls += 1
                first = calls <= 4
            if first:
                together.wait()
            return super().generate(prompts, params)

    original = backends.load_generator
    backends.load_generator = lambda settings: Counting(_respond)
    try:
        gen, meter = backends.load_run_generator(Settings(generator="openai", data_dir=tmp_path), cache_path=None)
    finally:
        backends.load_generator = original
    results = run_eval(_config(tmp_path, rounds=3, workers=4, methods="no-learning,oracle,cipher-1,cipher-5"),
                       embedder=HashEmbedder(), generator=gen)
    assert not together.broken
    results["generator"] = meter.summary()
    summary = summarize(results)
    assert summary["generator"]["calls"] == calls and summary["generator"]["completion_tokens"] > 0
    for m in summary["methods"].values():
        assert m["elapsed_s"] > 0


def test_progress_gets_each_round_once_also_on_resume(tmp_path):
    from redline.evals.harness import run_eval

    seen: dict[str, list] = {}

    def progress(method, total):
        assert total == 3 * 2
        return lambda row: seen.setdefault(method, []).append((row["seed"], row["round"]))

    run_eval(_config(tmp_path, rounds=2, methods="cipher-1"), embedder=HashEmbedder(),
             generator=ScriptedGenerator(_respond))
    run_eval(_config(tmp_path, rounds=3, methods="cipher-1"), embedder=HashEmbedder(),
             generator=ScriptedGenerator(_respond), progress=progress, resume=True)
    assert sorted(seen["cipher-1"]) == [(s, r) for s in (0, 1) for r in range(3)]


# -- paired comparisons and claims --------------------------------------------------------------------------

def _stream(method, seed, costs):
    from redline.evals.harness import StreamResult

    return StreamResult(method, seed, costs, ["s"] * len(costs), [None] * len(costs), 0, 0, 0, 0.0)


def test_paired_intervals_windows_and_claims():
    from redline.evals.paired import Claim, judge, paired, parse_claim, windowed

    base = [10, 12, 9, 11, 10, 13, 8, 10, 11, 12, 10, 9]
    streams = [_stream("cipher-5", s, base) for s in (0, 1)]
    streams += [_stream("redline", 0, [c - 2 for c in base]), _stream("redline", 1, [c - 1 for c in base])]
    streams += [_stream("no-learning", s, [30] * 12) for s in (0, 1)]
    p = paired(streams, "redline", "cipher-5")
    assert p["n"] == 24 and p["mean"] == -1.5 and p["cheaper"] == 24 and p["low"] < -1.5 < p["high"] < 0
    assert [w["rounds"] for w in windowed(streams, "redline", "cipher-5")] == ["1-10", "11-12"]
    verdicts = {c["claim"]: c["verdict"] for c in judge(streams, (
        Claim("redline", "cipher-5"), Claim("redline", "cipher-5", every_window=True),
        Claim("redline", "cipher-5", 0.5), Claim("redline", "no-learning", 0.5), Claim("cipher-5", "redline"),
        Claim("oracle", "no-learning")))}
    assert verdicts == {"redline ≤ cipher-5": "holds", "redline ≤ cipher-5 in every 10-round window": "holds",
                        "redline ≤ 0.5× cipher-5": "fails", "redline ≤ 0.5× no-learning": "holds",
                        "cipher-5 ≤ redline": "fails"}  # no oracle in the run: not judged
    twice = judge(streams, (Claim("redline", "cipher-5", 0.7), parse_claim("redline <= 0.70 cipher-5")))
    assert [c["claim"] for c in twice] == ["redline ≤ 0.7× cipher-5"]  # a --claim that is also a default: once
    noisy = [_stream("a", 0, [5, 9, 5, 9]), _stream("b", 0, [7, 7, 7, 7])]
    assert judge(noisy, (Claim("a", "b"),))[0]["verdict"] == "undecided"
    assert parse_claim("redline <= cipher-5 in every window") == Claim("redline", "cipher-5", 1.0, True)
    with pytest.raises(ValueError, match="cannot read the claim 'redline < cipher-5'"):
        parse_claim("redline < cipher-5")


def test_the_report_states_claims_and_paired_windows(tmp_path):
    from click.testing import CliRunner

    from redline.cli import cli
    from redline.evals.harness import run_eval
    from redline.evals.report import write_report

    out = tmp_path / "out"
    results = run_eval(_config(out, rounds=12, methods="no-learning,cipher-5,redline"), embedder=HashEmbedder(),
                       generator=ScriptedGenerator(_respond))
    summary = write_report(results, out)
    report = (out / "report.md").read_text()
    assert "## Claims at 95%" in report and "redline ≤ cipher-5 in every 10-round window" in report
    assert "| redline − cipher-5 | 24 |" in report and "| x − y | rounds 1-10 | rounds 11-12 |" in report
    assert {c["claim"] for c in summary["claims"]} >= {"redline ≤ cipher-5", "redline ≤ 0.5× no-learning"}
    res = CliRunner().invoke(cli, ["eval", "--task", "summarize", "--out", str(out), "--report-only",
                                   "--claim", "cipher-5 <= 0.95 no-learning"])
    assert res.exit_code == 0, res.output
    assert "cipher-5 ≤ 0.95× no-learning" in res.output
    res = CliRunner().invoke(cli, ["eval", "--task", "summarize", "--out", str(out), "--report-only",
                                   "--claim", "cipher-5 < no-learning"])
    assert res.exit_code == 1 and "cannot read the claim 'cipher-5 < no-learning'" in res.output


def test_the_price_of_choosing_is_logged_and_reported(tmp_path):
    """Each round with a choice logs the reward's confidence, the user's pairs and what the greedy draft would have
    cost (the rule user's edit of it); the report sums the chosen drafts' cost minus that, per window."""
    from redline.agent import edit_cost
    from redline.evals.backends import Draft
    from redline.evals.harness import _selection_log, run_eval
    from redline.evals.report import summarize
    from redline.evals.tasks import Document
    from redline.evals.users import RuleUser, load_user_specs

    user = RuleUser(load_user_specs("summarize"))
    doc = Document("w", "wikipedia", "A long text.")
    greedy = "The tower is old. It is tall, and it was built in 1900 by many workers over years."
    chosen = Draft("i", "- The tower is old.", None, 0, 0, differs_from_greedy=True, greedy_text=greedy,
                   confidence=0.8, kept_greedy=False, user_pairs=9)
    logged = _selection_log(chosen, 3, user, doc)
    assert logged == {"confidence": 0.8, "kept_greedy": False, "user_pairs": 9,
                      "cost_if_greedy": edit_cost(greedy, user.feedback("wikipedia", doc.text, greedy).edited)}
    kept = Draft("i", greedy, None, 0, 0, differs_from_greedy=False, greedy_text=greedy, confidence=0.55,
                 kept_greedy=True, user_pairs=9)
    assert _selection_log(kept, 7, user, doc)["cost_if_greedy"] == 7
    assert _selection_log(Draft("i", greedy, None, 0, 0), 7, user, doc) == {}  # no choice, nothing to price

    config = _config(tmp_path, rounds=8, methods="redline", settings={"reward_min_pairs": 2,
                                                                       "reward_min_confidence": 0.5})
    results = run_eval(config, embedder=HashEmbedder(), generator=ScriptedGenerator(_respond))
    rows = [json.loads(x) for s in (0, 1) for x in (tmp_path / "logs" / f"redline-s{s}.jsonl").read_text()
            .splitlines()]
    chosen_rows = [r for r in rows if r["candidates"] > 1]
    assert chosen_rows and all(r["user_pairs"] >= 2 and "cost_if_greedy" in r for r in chosen_rows)
    assert all("cost_if_greedy" not in r for r in rows if r["candidates"] == 1)
    price = summarize(results)["methods"]["redline"]["selection"]["price"]
    assert price["total"] == sum(r["cost"] - r["cost_if_greedy"] for r in chosen_rows)
    assert price["rounds"] == len(chosen_rows) and sum(price["windows"].values()) == price["total"]
    taken = [r["confidence"] for r in chosen_rows if r["differs_from_greedy"]]
    assert price["taken"] == len(taken) and price["expected"] == (round(sum(taken) / len(taken), 3) if taken else None)
    assert taken and all(0.5 <= c <= 1 for c in taken)


# -- real writers' edits --------------------------------------------------------------------------------------

def test_coauthor_sessions_replay_into_draft_and_kept_pairs():
    """scripts/vendor_coauthor.py follows an accepted suggestion's characters through the writer's later edits."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from vendor_coauthor import replay

    def ev(name, source, ops):
        return {"eventName": name, "eventSource": source, "textDelta": {"ops": ops}}

    events = [{"eventName": "system-initialize", "eventSource": "api", "textDelta": "", "currentDoc": "Prompt.\n"},
              ev("text-insert", "user", [{"retain": 8}, {"insert": "I"}]),
              ev("text-insert", "api", [{"retain": 9}, {"insert": " walked to the big old house."}]),
              ev("text-delete", "user", [{"retain": 24}, {"delete": 4}]),  # "big " goes
              ev("text-insert", "user", [{"retain": 24}, {"insert": "tiny "}]),
              ev("text-insert", "api", [{"retain": 39}, {"insert": " It was dark and cold there."}]),
              ev("text-delete", "user", [{"retain": 39}, {"delete": 28}])]  # the second suggestion deleted
    text, kept = replay(events)
    assert text == "Prompt.\nI walked to the tiny old house."
    assert kept == [(" walked to the big old house.", "walked to the tiny old house."),
                    (" It was dark and cold there.", "")]


def test_the_shipped_real_edits_replay(tmp_path):
    from redline.evals.lamp import COAUTHOR_DATA, LAMP_DATA, load_writers
    from redline.evals.methods import parse_methods
    from redline.evals.replay import run_replay, write_replay_report

    lamp, coauthor = load_writers(LAMP_DATA), load_writers(COAUTHOR_DATA)
    assert set(lamp) == {"W3", "W12", "W16"} and all(len(v) == 50 for v in lamp.values())
    assert len(coauthor) == 3 and all(len(v) == 50 for v in coauthor.values())
    assert all(r["preedit"] != r["postedit"] for v in coauthor.values() for r in v)
    res = run_replay(parse_methods("cipher-1"), tmp_path, embedder=HashEmbedder(), data=COAUTHOR_DATA,
                     generator=ScriptedGenerator(lambda p, i: "A revised sentence."), learn_edits=2, held_out=3)
    assert set(res["writers"]) == set(coauthor)
    versus = res["vs_unrevised"][next(iter(coauthor))]["cipher-1"]
    assert versus["n"] == 3 and versus["cheaper"] + versus["dearer"] + versus["equal"] == 3
    report = write_replay_report(res, tmp_path)
    assert report.startswith("# Real-edit replay (writers A2") and "| writer | method | mean [95% CI] |" in report
    together = run_replay(parse_methods("cipher-1"), tmp_path / "together", embedder=HashEmbedder(),
                          data=COAUTHOR_DATA, generator=ScriptedGenerator(lambda p, i: "A revised sentence."),
                          learn_edits=2, held_out=3, workers=6)  # every (writer, method) at once: the same figures

    def figures(r):
        return {w: {k: v for k, v in row.items() if not k.endswith("_wall_s")} for w, row in r["writers"].items()}
    assert figures(together) == figures(res) and together["vs_unrevised"] == res["vs_unrevised"]


def test_runs_made_side_by_side_are_judged_together_as_one_run(tmp_path):
    """One process per method (how long evaluations run here) leaves one folder per method; ``--report-only --from``
    gathers them and judges them paired per round, exactly as one run of both methods would have been, and the
    report names each run's command. Runs that differ in what shapes a round, or share a stream, are refused."""
    from click.testing import CliRunner

    from redline.cli import cli
    from redline.evals.harness import ResumeError, run_eval
    from redline.evals.report import write_report

    def run(name, methods, **kwargs):
        out = tmp_path / name
        run_eval(_config(out, rounds=6, methods=methods, command=f"redline eval --out {name}", **kwargs),
                 embedder=HashEmbedder(), generator=ScriptedGenerator(_respond))
        return out

    together = write_report(run_eval(_config(tmp_path / "both", rounds=6, methods="no-learning,cipher-5"),
                                     embedder=HashEmbedder(), generator=ScriptedGenerator(_respond)),
                            tmp_path / "both")
    nl, c5 = run("nl", "no-learning"), run("c5", "cipher-5")
    merged = tmp_path / "merged"
    res = CliRunner().invoke(cli, ["eval", "--task", "summarize", "--out", str(merged), "--report-only",
                                   "--from", str(nl), "--from", str(c5), "--claim", "cipher-5 <= no-learning"])
    assert res.exit_code == 0, res.output
    summary = json.loads((merged / "summary.json").read_text())
    assert summary["config"]["methods"] == ["no-learning", "cipher-5"]
    assert summary["paired"] == together["paired"] and summary["paired"]  # the same per-round pairs
    assert {m: v["cumulative_cost_per_seed"] for m, v in summary["methods"].items()} == \
        {m: v["cumulative_cost_per_seed"] for m, v in together["methods"].items()}
    report = (merged / "report.md").read_text()
    assert "Judged together from 2 runs" in report
    assert "`redline eval --out nl`" in report and "`redline eval --out c5`" in report
    # the same method from two runs (two versions of the code), told apart by a tag, judged round by round
    res = CliRunner().invoke(cli, ["eval", "--task", "summarize", "--out", str(tmp_path / "ab"), "--report-only",
                                   "--from", str(nl), "--from", str(c5), "--from", f"{run('c5-b', 'cipher-5')}=b",
                                   "--claim", "cipher-5-b <= cipher-5"])
    assert res.exit_code == 0, res.output
    ab = json.loads((tmp_path / "ab" / "summary.json").read_text())
    assert list(ab["methods"]) == ["no-learning", "cipher-5", "cipher-5-b"]
    assert ab["methods"]["cipher-5-b"]["cumulative_cost_per_seed"] == ab["methods"]["cipher-5"][
        "cumulative_cost_per_seed"]  # the scripted generator answers both runs alike
    claim = next(c for c in ab["claims"] if c["claim"] == "cipher-5-b ≤ cipher-5")
    assert claim["stats"]["n"] == 12 and claim["stats"]["mean"] == 0
    assert "judged as cipher-5-b" in (tmp_path / "ab" / "report.md").read_text()
    with pytest.raises(ResumeError, match="gathered from several runs"):
        run_eval(_config(merged, rounds=6, methods="no-learning,cipher-5"), embedder=HashEmbedder(),
                 generator=ScriptedGenerator(_respond), resume=True)

    def refused(*runs, task="summarize", report_only=True):
        args = ["eval", "--task", task, "--out", str(tmp_path / "refused")]
        res = CliRunner().invoke(cli, args + ["--report-only"] * report_only + [a for r in runs for a in
                                                                                 ("--from", str(r))])
        assert res.exit_code != 0
        return res.output

    assert "the stream no-learning-s0 is in both" in refused(nl, run("nl-again", "no-learning"))
    assert "a tag is letters" in refused(nl, f"{c5}=new tag")
    assert "max_tokens: None in" in refused(nl, run("c5-longer", "cipher-5", max_tokens=64))
    assert "not 'email'" in refused(nl, c5, task="email")
    assert "use it with --report-only" in refused(nl, c5, report_only=False)
