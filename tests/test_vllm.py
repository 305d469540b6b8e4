"""The ``openai`` back-end against a real vLLM server (``scripts/test-vllm`` sets one up and runs these).

Skipped unless ``REDLINE_VLLM_URL`` names a running OpenAI-compatible server (e.g.
``http://127.0.0.1:8000/v1``); with ``REDLINE_TEST_VLLM=1`` an unreachable server fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import threading
import time

import httpx
import pytest

from conftest import MODELS_DIR
from servers import Server, wait_learned

pytestmark = [pytest.mark.vllm, pytest.mark.integration]

CONTEXTS = [
    "The city council voted to extend library hours on weekends after a petition gathered 3,000 signatures.",
    "A local bakery started donating unsold bread to the shelter every evening, cutting its waste by half.",
    "The school district will replace its old buses with electric ones over the next four years.",
]
SIMILAR = "The county library board agreed to open branches on Sunday afternoons after residents asked for it."
EDIT = "- Library open longer on weekends\n- 3,000 people signed the petition"


@pytest.fixture(scope="module")
def vllm_url() -> str:
    url = os.environ.get("REDLINE_VLLM_URL", "").rstrip("/")
    required = os.environ.get("REDLINE_TEST_VLLM") == "1"
    if not url:
        if required:
            pytest.fail("REDLINE_TEST_VLLM=1 but REDLINE_VLLM_URL is not set")
        pytest.skip("no vLLM server: set REDLINE_VLLM_URL (scripts/test-vllm starts one and runs these tests)")
    try:
        httpx.get(url + "/models", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        if required:
            pytest.fail(f"vLLM server at {url} is not reachable: {exc}")
        pytest.skip(f"vLLM server at {url} is not reachable: {exc}")
    return url


class RecordingTransport(httpx.BaseTransport):
    """Records (path, body, start, end) of every request the generator sends, then forwards it."""

    def __init__(self):
        self.inner = httpx.HTTPTransport()
        self.requests: list[tuple[str, dict, float, float]] = []
        self._lock = threading.Lock()

    def handle_request(self, request):
        start = time.monotonic()
        body = json.loads(request.content) if request.content else {}
        response = self.inner.handle_request(request)
        response.read()
        with self._lock:
            self.requests.append((request.url.path, body, start, time.monotonic()))
        return response

    def completions(self, about: str = ""):
        """Chat requests, only those whose last message contains ``about`` if given."""
        return [r for r in self.requests if r[0].endswith("/chat/completions")
                and about in r[1]["messages"][-1]["content"]]


@pytest.fixture
def recorded(vllm_url):
    from redline.agent.generators.openai_backend import OpenAIGenerator

    transport = RecordingTransport()
    generator = OpenAIGenerator(vllm_url, transport=transport)
    yield generator, transport
    generator.close()


def test_n_samples_come_from_one_request(recorded):
    from redline.agent import GenerationParams

    generator, transport = recorded
    prompt = [{"role": "user", "content": "Write one sentence about autumn."}]
    [out] = generator.generate([prompt], GenerationParams(n=4, temperature=1.0, max_tokens=24, seed=3))
    assert len(out.texts) == 4 and all(t.strip() for t in out.texts)
    assert len(set(out.texts)) > 1  # sampled, not one greedy text repeated
    assert out.prompt_tokens > 0 and 4 <= out.completion_tokens <= 4 * 24
    assert len(transport.completions()) == 1


def test_different_prompts_are_concurrent_requests(recorded):
    from redline.agent import GenerationParams

    generator, transport = recorded
    prompts = [[{"role": "user", "content": f"Name a {thing}."}] for thing in ("colour", "river", "bird", "tree")]
    outs = generator.generate(prompts, GenerationParams(n=1, temperature=0, max_tokens=32))
    assert [len(o.texts) for o in outs] == [1, 1, 1, 1]
    calls = transport.completions()
    assert len(calls) == 4
    # all four were in flight together, so the server could batch them
    assert max(start for *_, start, _ in calls) < min(end for *_, end in calls)


def test_learning_loop_through_vllm(make_agent, vllm_url):
    from redline.agent.generators.openai_backend import OpenAIGenerator

    agent = make_agent(OpenAIGenerator(vllm_url), max_tokens=32, temperature=0)
    first = agent.generate("alice", CONTEXTS[0], "summarize")
    assert first.text and first.preference is None and first.model
    learned = agent.learn(first.interaction_id, EDIT)
    assert learned.is_edit and learned.preference
    second = agent.generate("alice", SIMILAR, "summarize")
    assert second.neighbours[0]["interaction_id"] == first.interaction_id
    assert second.preference == learned.preference
    assert learned.preference.rstrip(". ") in second.prompt[-1]["content"]
    assert agent.generate("bob", SIMILAR, "summarize").preference is None  # alice's history is hers


@pytest.mark.parametrize("strategy", ["best_of_n", "rps"])
def test_selection_strategies_through_vllm(make_agent, recorded, strategy):
    from redline.agent import GenerateOptions

    from doubles import ScriptedGenerator

    generator, transport = recorded
    said = iter(range(10**6))
    # edits learned and heads trained with a scripted generator (fast); then vLLM writes the candidates
    agent = make_agent(ScriptedGenerator(lambda prompt, i: f"plain words number {next(said)}"), max_tokens=24,
                       reward_retrain_every=2, reward_heads=2, seed=1)
    for ctx in CONTEXTS:
        r = agent.generate("alice", ctx, "summarize")
        agent.learn(r.interaction_id, f"In short: {ctx.split(',')[0]}.")
    agent.train_rewards()
    assert agent.rewards.current() is not None
    agent._generator = generator
    transport.requests.clear()
    result = agent.generate("alice", SIMILAR, "summarize", GenerateOptions(strategy=strategy, n=3, temperature=0))
    assert len(result.candidates) == 3 and sum(c["chosen"] for c in result.candidates) == 1
    assert all(isinstance(c["score"], float) for c in result.candidates)
    chosen = next(c for c in result.candidates if c["chosen"])
    assert result.text == chosen["text"] and chosen["reward"] == max(c["reward"] for c in result.candidates)
    # the greedy target draft: the task prompt about SIMILAR (a revision shows the draft, which may quote it)
    greedy = [r for r in transport.completions(about=SIMILAR)
              if "Here is a draft" not in r[1]["messages"][-1]["content"]]
    assert len(greedy) == 1 and greedy[0][1]["n"] == 1 and greedy[0][1]["temperature"] == 0.0
    writes = transport.completions(about="Here is a draft")  # the alternatives: revisions of the greedy draft
    assert {w[1]["temperature"] for w in writes} == {0.8}
    if strategy == "best_of_n":
        assert len(writes) == 1 and writes[0][1]["n"] == 2  # n - 1 revisions from one request
    else:
        assert any(c["source"].startswith("neighbour:") for c in result.candidates)
        assert len(writes) == len({c["preference"] for c in result.candidates[1:]})  # one request per prompt
        if len(writes) > 1:
            assert max(start for *_, start, _ in writes) < min(end for *_, end in writes)  # sent together


def test_redline_server_on_vllm(tmp_path, vllm_url):
    """`redline serve --generator openai` in front of vLLM: generate, edit, generate, then best-of-n."""
    server = Server(["-m", "redline.cli", "serve", "--port", "0", "--no-auth"], tmp_path / "data",
                    REDLINE_GENERATOR="openai", REDLINE_GENERATOR_URL=vllm_url, REDLINE_MAX_TOKENS="32",
                    REDLINE_TEMPERATURE="0", REDLINE_REWARD_RETRAIN_EVERY="1").wait_ready()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            first = c.post("/v1/generate", json={"user": "carol", "context": CONTEXTS[0], "task": "summarize"})
            assert first.status_code == 200, first.text
            iid = first.json()["interaction_id"]
            assert c.post(f"/v1/interactions/{iid}/edit", json={"edited_text": EDIT}).status_code == 202
            learned = wait_learned(c, "carol", 1, timeout=120)
            second = c.post("/v1/generate", json={"user": "carol", "context": SIMILAR}).json()
            assert second["preference"] == learned["preferences"][0]["text"]
            assert second["neighbours"][0]["interaction_id"] == iid
            # the worker retrains the heads after the first pair; then carol has a routing state
            deadline = time.monotonic() + 120
            while c.get("/v1/users/carol/preferences").json()["routing"] is None:
                assert time.monotonic() < deadline, "reward heads were not trained"
                time.sleep(0.5)
            best = c.post("/v1/generate", json={"user": "carol", "context": SIMILAR, "strategy": "best_of_n",
                                                "n": 2, "temperature": 0.9})
            assert best.status_code == 200, best.text
            assert len(best.json()["candidates"]) == 2 and best.json()["text"]
    finally:
        server.stop()


@pytest.fixture(scope="module")
def in_process_vllm():
    """The in-process back-end (``redline[vllm]``); runs where vLLM is installed (scripts/test-vllm runs it in
    .vllm-venv). Needs the converted model folder that scripts/vllm-env writes."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        if os.environ.get("REDLINE_TEST_VLLM_IN_PROCESS") == "1":
            pytest.fail("REDLINE_TEST_VLLM_IN_PROCESS=1 but vllm is not importable here")
        pytest.skip("vllm is not installed in this environment (scripts/test-vllm runs this in .vllm-venv)")
    from redline.agent.generators.model_files import ensure_converted_model
    from redline.agent.generators.vllm_backend import VLLMGenerator

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    return VLLMGenerator(str(ensure_converted_model(MODELS_DIR, "smollm2")))


def test_in_process_vllm_batches_prompts_and_samples_and_learns(in_process_vllm, make_agent):
    from redline.agent import GenerationParams

    prompts = [[{"role": "user", "content": "Name a colour."}], [{"role": "user", "content": "Name a fruit."}]]
    outs = in_process_vllm.generate(prompts, GenerationParams(n=3, temperature=1.0, max_tokens=16, seed=2))
    assert [len(o.texts) for o in outs] == [3, 3]
    assert all(o.prompt_tokens > 0 and 3 <= o.completion_tokens <= 48 for o in outs)
    assert len(set(outs[0].texts)) > 1

    agent = make_agent(in_process_vllm, max_tokens=32, temperature=0)
    first = agent.generate("alice", CONTEXTS[0], "summarize")
    learned = agent.learn(first.interaction_id, EDIT)
    second = agent.generate("alice", SIMILAR, "summarize")
    assert learned.preference and second.preference == learned.preference
    assert second.model == in_process_vllm.model_name
