"""The embedded default back-end: llama.cpp's server, over its OpenAI-compatible HTTP API.

Without a URL it starts (and at ``close`` stops) its own ``LlamaServer`` on a free loopback port; with one
(``REDLINE_GENERATOR_URL``) it attaches to a server that another process started, e.g. the one a supervisor starts
for every redline process of a machine. Either way the server does the batching: best-of-n's ``n`` candidates
share one prompt evaluation and decode together in its parallel slots, and concurrent calls (other requests,
other processes) join the same decoding steps.

Requests before background work: a ``priority="background"`` call waits while any slot of the server is busy (its
``/slots``), for at most ``background_wait`` seconds, so learning's inference calls never slow a request that is
already decoding, whichever process sent it, and still run under a steady request load.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Iterator, Sequence

import httpx

from .base import ChatPrompt, Generation, GenerationParams
from .llama_server import LlamaServer
from .openai_backend import OpenAIGenerator

__all__ = ["LlamaServerGenerator"]
log = logging.getLogger(__name__)


class LlamaServerGenerator(OpenAIGenerator):
    """``LlamaServerGenerator(url)`` attaches to a running llama-server; ``LlamaServerGenerator(server=...)``
    owns that ``LlamaServer``: started by ``load()`` (or the first call), stopped by ``close()``.

    ``slots`` is the most completions one request may ask for (the server's ``--parallel``; more are split into
    several requests with distinct seeds).
    """

    def __init__(self, url: str | None = None, *, server: LlamaServer | None = None, slots: int = 4,
                 background_wait: float = 30.0, poll_interval: float = 0.05, **kwargs):
        if (url is None) == (server is None):
            raise ValueError("give either the URL of a running llama-server or a LlamaServer to start")
        self.server = server
        self.slots = server.slots if server is not None else slots
        self.background_wait, self.poll_interval = background_wait, poll_interval
        self._kwargs = kwargs
        self._start_lock = threading.Lock()
        self._serving = False  # the owned server is healthy and the client points at it
        super().__init__(url or "http://127.0.0.1:0/v1", server.alias if server is not None else None, **kwargs)

    def load(self) -> "LlamaServerGenerator":
        """Start the owned server (once; again if it died) and wait until it is healthy; attached: nothing to do.
        Concurrent callers wait for the one that starts it."""
        if self.server is not None and not (self._serving and self.server.alive):
            with self._start_lock:
                if not (self._serving and self.server.alive):
                    self._serving = False
                    self.server.start()
                    self._client.close()
                    self.base_url = self.server.url
                    self._client = self._new_client()
                    self._serving = True
        return self

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        if not prompts:
            return []
        self.load()
        if params.priority == "background":
            self._wait_until_idle()
        if params.n <= self.slots:
            return super().generate(prompts, params)
        # More completions than slots: several requests of at most `slots`, seeds apart (the server gives a
        # request's i-th completion seed + i).
        chunks = [(start, min(self.slots, params.n - start)) for start in range(0, params.n, self.slots)]
        parts = [super(LlamaServerGenerator, self).generate(prompts, dataclasses.replace(
            params, n=size, seed=None if params.seed is None else params.seed + start)) for start, size in chunks]
        return [Generation([t for part in parts for t in part[i].texts],
                           prompt_tokens=parts[0][i].prompt_tokens,
                           completion_tokens=sum(part[i].completion_tokens for part in parts))
                for i in range(len(prompts))]

    def stream(self, prompt: ChatPrompt, params: GenerationParams) -> Iterator[str | Generation]:
        self.load()
        if params.priority == "background":
            self._wait_until_idle()
        yield from super().stream(prompt, params)

    def busy(self) -> bool:
        """Whether any slot of the server is decoding or evaluating a prompt (``GET /slots``)."""
        url = self.base_url.removesuffix("/v1") + "/slots"
        try:
            response = self._client.get(url, timeout=5.0)
        except httpx.TransportError:  # a kept-alive connection the server closed meanwhile: once more
            response = self._client.get(url, timeout=5.0)
        response.raise_for_status()
        return any(slot.get("is_processing") for slot in response.json())

    def _wait_until_idle(self) -> None:
        deadline = time.monotonic() + self.background_wait
        while time.monotonic() < deadline:
            try:
                if not self.busy():
                    return
            except (httpx.HTTPError, ValueError):  # no /slots (an older server, --no-slots): do not wait
                return
            time.sleep(self.poll_interval)
        log.info("background generation waited %.0f s for an idle generator; running beside requests",
                 self.background_wait)

    def close(self) -> None:
        super().close()
        if self.server is not None:
            self.server.stop()
