"""llama.cpp's server as the generator, on SmolLM2's packaged GGUF: a child process that starts, answers, streams,
serves background work after requests, and never outlives its owner; ``redline generator-server``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from redline.agent import GenerationParams, GeneratorUnavailable
from redline.agent.generators.llama_backend import LlamaServerGenerator
from redline.agent.generators.llama_server import LlamaServer
from redline.agent.generators.model_files import ensure_gguf

from servers import wait_until

pytestmark = pytest.mark.integration
PROMPT = [{"role": "user", "content": "Write a short paragraph about the sea."}]


@pytest.fixture(scope="module")
def smollm_gguf(tmp_path_factory):
    return ensure_gguf(tmp_path_factory.mktemp("models"), "smollm2")


@pytest.fixture(scope="module")
def served(smollm_gguf, tmp_path_factory):
    server = LlamaServer(smollm_gguf, slots=2, context=4096, log_path=tmp_path_factory.mktemp("logs") / "ls.log")
    gen = LlamaServerGenerator(server=server).load()
    yield gen
    gen.close()


def test_start_answer_and_stop(smollm_gguf, tmp_path):
    server = LlamaServer(smollm_gguf, slots=2, context=2048, log_path=tmp_path / "ls.log")
    with server:
        assert server.alive and server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
        models = httpx.get(server.url + "/models").json()
        assert [m["id"] for m in models["data"]] == ["SmolLM2-135M-Instruct.gguf"]
    assert not server.alive
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/models")


def test_a_model_that_is_not_gguf_fails_with_the_log(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(GeneratorUnavailable, match="llama-server exited at start .*log: "):
        LlamaServer(bad, log_path=tmp_path / "ls.log").start(timeout=60)


def test_n_samples_differ_and_the_stream_adds_up(served):
    out = served.generate([PROMPT], GenerationParams(n=2, temperature=1.0, seed=3, max_tokens=24))[0]
    assert len(out.texts) == 2 and out.texts[0] != out.texts[1] and out.prompt_tokens > 0
    pieces = list(served.stream(PROMPT, GenerationParams(temperature=0, max_tokens=24)))
    assert len(pieces) > 3 and "".join(pieces[:-1]) == pieces[-1].texts[0]
    again = served.generate([PROMPT], GenerationParams(temperature=0, max_tokens=24))[0]
    assert again.texts[0] == pieces[-1].texts[0]  # greedy: the same text streamed or not


def test_background_work_waits_for_the_request_being_decoded(served):
    done = []

    def request():
        served.generate([PROMPT], GenerationParams(temperature=0, max_tokens=120, seed=1))
        done.append("request")

    thread = threading.Thread(target=request)
    thread.start()
    deadline = time.monotonic() + 30
    while not served.busy() and time.monotonic() < deadline:
        time.sleep(0.01)
    served.generate([PROMPT], GenerationParams(temperature=0, max_tokens=4, priority="background"))
    done.append("background")
    thread.join()
    # Without the wait the 4-token answer would have come back long before the 120-token one.
    assert done == ["request", "background"]


def _assert_gone(pid: int, within: float = 20) -> None:
    """Fails (and kills it) when process ``pid`` still runs ``within`` seconds from now."""
    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        wait_until(gone, within, "llama-server outlived its owner", every=0.1)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        raise


def test_the_server_dies_with_the_process_that_started_it(smollm_gguf, tmp_path):
    script = (f"from redline.agent.generators.llama_server import LlamaServer\n"
              f"s = LlamaServer({str(smollm_gguf)!r}, slots=1, context=1024).start()\n"
              f"print(s._proc.pid, flush=True)\n"
              f"import time; time.sleep(600)\n")
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    pid = int(owner.stdout.readline())
    os.kill(pid, 0)  # running
    owner.kill()  # SIGKILL: no cleanup code runs in the owner
    owner.wait()
    _assert_gone(pid)


def test_an_owner_that_exits_with_threads_leaves_no_server_behind(smollm_gguf, tmp_path):
    """The death signal comes once per thread of the owner that ends after the one that started the server; a
    second SIGTERM made llama-server call exit() in its signal handler, where it could hang for ever (seen
    after a test run). Three owners with 40 idle threads each exit without stopping their server."""
    log = tmp_path / "ls.log"
    script = (f"import sys, threading, time\n"
              f"from redline.agent.generators.llama_server import LlamaServer\n"
              f"s = LlamaServer({str(smollm_gguf)!r}, slots=1, context=1024, log_path={str(log)!r}).start()\n"
              f"print(s._proc.pid, flush=True)\n"
              f"for _ in range(40): threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
              f"sys.exit(0)\n")
    for _ in range(3):
        owner = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120, check=True)
        _assert_gone(int(owner.stdout.split()[0]))
    assert "second interrupt" not in log.read_text(errors="replace")


def test_generator_server_command_serves_until_sigterm(tmp_path):
    env = dict(os.environ, REDLINE_DATA_DIR=str(tmp_path / "data"), REDLINE_GENERATOR_MODEL="smollm2",
               REDLINE_GENERATOR_SLOTS="1", REDLINE_GENERATOR_CONTEXT="2048")
    proc = subprocess.Popen([sys.executable, "-m", "redline.cli", "--json", "generator-server", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        lines = [proc.stdout.readline()]
        while lines[-1].strip() != b"}":  # --json prints one indented object once the server is healthy
            lines.append(proc.stdout.readline())
        started = json.loads(b"".join(lines))
        assert started["model"] == "SmolLM2-135M-Instruct.gguf" and started["slots"] == 1
        gen = LlamaServerGenerator(started["url"])
        assert gen.generate([PROMPT], GenerationParams(max_tokens=4))[0].texts[0]
        gen.close()  # attached: closing the client leaves the server running
        assert httpx.get(started["url"] + "/models").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(started["url"] + "/models")


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_serve_runs_one_llama_server_for_all_its_processes(tmp_path):
    """``redline serve`` on the default back-end: the supervisor starts one llama-server before the API process and
    the learner, both use it (a draft, then learning's inference), neither starts one of its own, and a SIGTERM to
    the supervisor stops it last."""
    from servers import Server, wait_learned

    server = Server(["-m", "redline.cli", "serve", "--port", "0", "--no-auth"], tmp_path / "data",
                    REDLINE_GENERATOR_MODEL="smollm2", REDLINE_GENERATOR_SLOTS="2",
                    REDLINE_GENERATOR_CONTEXT="4096", REDLINE_MAX_TOKENS="16").wait_ready()
    try:
        children = server.children()
        assert set(children) == {"generator", "learner-0", "api-0"}, server.log()
        generator = children["generator"]
        assert "llama-server" in open(f"/proc/{generator}/cmdline").read()
        c = httpx.Client(base_url=server.url, timeout=120)
        made = c.post("/v1/generate", json={"user": "ann", "context": "The tide came in early on Monday."})
        assert made.status_code == 200 and made.json()["text"], made.text
        edited = "Hi team,\n\n" + made.json()["text"]
        assert c.post(f"/v1/interactions/{made.json()['interaction_id']}/edit",
                      json={"edited_text": edited}).status_code == 202
        wait_learned(c, "ann", 1, timeout=120)
        c.close()
        own = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
               if pid != generator and _safe_parent(pid) in (children["api-0"], children["learner-0"])
               and "llama-server" in _cmdline(pid)]
        assert own == []  # the API process and the learner attached to the supervisor's server
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log()
    with pytest.raises(ProcessLookupError):
        os.kill(generator, 0)


def _safe_parent(pid: int) -> int | None:
    try:
        return _parent(pid)
    except OSError:
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read()
    except OSError:
        return ""
