"""Real server processes for tests: ``redline serve`` (supervisor, API processes, learner) on an ephemeral port, in
front of the scripted OpenAI-compatible generator server (``doubles.server``) that all its processes call."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from redline.runtime import quiet_offline_models

from doubles.server import wait_ready

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"  # the test doubles (``doubles``) import from here: they are not part of redline's wheel
RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
STARTED = re.compile(r"supervisor: started (\S+) \(pid (\d+)\)")


class Server:
    """A server subprocess; ``url`` once it listens, ``wait_ready()`` until /ready says 200."""

    def __init__(self, args: list[str], data_dir: Path, *, log_name: str = "server", **env: str):
        self.data_dir = data_dir
        self.log_path = data_dir / f"{log_name}-{time.monotonic_ns()}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("REDLINE_")}
        quiet_offline_models(full_env)
        full_env.update(REDLINE_DATA_DIR=str(data_dir), **env)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.generator: GeneratorServer | None = None
        self.url = self._wait_port()

    def _wait_port(self, timeout: float = 120) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            match = RUNNING.search(self.log_path.read_text())
            if match:
                return f"http://127.0.0.1:{match.group(1)}"
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def wait_ready(self, timeout: float = 180) -> "Server":
        try:
            if wait_ready(self.url, timeout):
                return self
            raise RuntimeError(f"server not ready:\n{self.log_path.read_text()}")
        except BaseException:  # a fixture that fails here never reaches its teardown: stop the process
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text()

    def children(self) -> dict[str, int]:
        """The supervisor's children now: name (``api-0``, ``learner-0``, ...) → pid (the latest start of each)."""
        return {name: int(pid) for name, pid in STARTED.findall(self.log())}

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        if self.generator is not None:
            self.generator.stop()


class GeneratorServer(Server):
    """``doubles.server``: the scripted generator over HTTP, with its call counts."""

    def __init__(self, data_dir: Path, **env: str):
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        super().__init__(["-m", "doubles.server", "--port", "0"], data_dir, log_name="generator", PYTHONPATH=path,
                         **env)

    def stats(self, *, subjects: bool = False) -> dict:
        return httpx.get(self.url + "/stats", params={"subjects": 1} if subjects else None, timeout=30).json()


SCRIPTED = ("REDLINE_SCRIPTED_DELAY", "REDLINE_SCRIPTED_DOWN_FILE", "REDLINE_SCRIPTED_BROKEN_FILE")


def scripted_server(data_dir: Path, *args: str, **env: str) -> Server:
    """``redline serve --port 0 ARGS`` with the scripted generator server (started first; ``REDLINE_SCRIPTED_*``
    in ``env`` go to it, everything else to redline). The generator is stopped with the server."""
    generator = GeneratorServer(data_dir, **{k: v for k, v in env.items() if k in SCRIPTED})
    env = {k: v for k, v in env.items() if k not in SCRIPTED}
    env.setdefault("REDLINE_RETRY_AFTER_SECONDS", "1")
    env.setdefault("REDLINE_GENERATOR_RETRIES", "0")
    try:
        server = Server(["-m", "redline.cli", "serve", "--port", "0", *args], data_dir, REDLINE_GENERATOR="openai",
                        REDLINE_GENERATOR_URL=generator.url + "/v1", **env)
    except BaseException:
        generator.stop()
        raise
    server.generator = generator
    return server


def create_key(data_dir: Path, tenant: str, **env: str) -> str:
    """A new API key of ``tenant`` (``redline keys create``) in the store of ``data_dir`` (or, with
    ``REDLINE_DATABASE_URL`` in ``env``, that database)."""
    out = subprocess.run([sys.executable, "-m", "redline.cli", "--data-dir", str(data_dir), "keys", "create",
                          "--tenant", tenant], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return out.stdout.strip()


def error(status_body: httpx.Response) -> dict:
    body = status_body.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code"}, body
    assert status_body.headers["x-request-id"]
    return body["error"]


def wait_until(check, timeout: float, what: str, every: float = 0.2):
    """``check()``'s first true result, asked every ``every`` seconds; an ``AssertionError`` saying ``what`` once
    ``timeout`` seconds have passed without one."""
    end = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < end, what
        time.sleep(every)
    return result


def wait_learned(client: httpx.Client, user: str, edits: int, timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        data = client.get(f"/v1/users/{user}/export").json()
        learned = [e for e in data.get("edits", []) if e["learned_at"]]
        if len(learned) >= edits:
            return data
        time.sleep(0.1)
    raise AssertionError(f"{user}: edits not learned in {timeout}s: {data}")


def raw_request(url: str, head: bytes) -> bytes:
    """Send ``head`` (a request line and headers, as bytes nothing re-encodes) to the server at ``url``, and read
    the whole answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + b"Host: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def files_holding(folder: Path, needles: dict[str, list[bytes]]) -> dict[str, list[str]]:
    """For each file under ``folder`` (database, WAL, shm, checkpoints, caches, the server's log): which needles
    (a name and the byte strings that spell it) its raw bytes hold."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        names = [name for name, forms in needles.items() if any(form in data for form in forms)]
        if names:
            found[str(path.relative_to(folder))] = names
    return found
