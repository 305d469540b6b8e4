"""Generator over any OpenAI-compatible HTTP server (``vllm serve`` in production), with httpx."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import httpx
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ..errors import GeneratorUnavailable
from .base import ChatPrompt, Generation, GenerationParams

__all__ = ["OpenAIGenerator"]
log = logging.getLogger(__name__)


class _Overloaded(Exception):
    """The server answered, but with 429 or 5xx: worth another attempt."""


class OpenAIGenerator:
    """``POST {base_url}/chat/completions`` with ``n`` samples per request; different prompts are sent
    as concurrent requests so the server's continuous batching and prefix caching share the work.

    ``extra_body`` fields go into every request as they are (a server's own sampling options, e.g. vLLM's
    ``repetition_penalty`` or llama.cpp's ``dry_multiplier``).

    Failures (connection refused, timeouts, 429, 5xx) are retried ``retries`` times with exponential backoff
    (tenacity), then raised as ``GeneratorUnavailable`` with the URL in the message.
    """

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str = "EMPTY",
                 timeout: float = 120.0, retries: int = 2, backoff: float = 0.5, max_concurrency: int = 16,
                 transport: httpx.BaseTransport | None = None, extra_body: dict | None = None):
        self.base_url = base_url.rstrip("/")
        self._model = model
        self.retries = retries
        self.backoff = backoff
        self.max_concurrency = max_concurrency
        self._timeout, self._transport, self._api_key = timeout, transport, api_key
        self.extra_body = dict(extra_body or {})  # the server's own sampling fields, sent with every request
        self._client = self._new_client()

    def _new_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=self._timeout, transport=self._transport,
                            headers={"Authorization": f"Bearer {self._api_key}"})

    @property
    def model_name(self) -> str:
        if self._model is None:
            self._model = self.models()[0]
        return self._model

    def _request(self, method: str, path: str, **kwargs) -> dict:
        retrying = Retrying(stop=stop_after_attempt(self.retries + 1), wait=wait_exponential(multiplier=self.backoff),
                            retry=retry_if_exception_type((httpx.HTTPError, _Overloaded)))
        try:
            response = retrying(self._send, method, path, **kwargs)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise GeneratorUnavailable(f"generator at {self.base_url} is unreachable or failing: {last}") from last
        if response.status_code >= 400:
            raise GeneratorUnavailable(f"generator at {self.base_url} rejected the request ({response.status_code}): "
                                       f"{response.text[:300]}", retryable=False)
        return response.json()

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self._client.request(method, path, **kwargs)
        if response.status_code >= 500 or response.status_code == 429:
            raise _Overloaded(f"HTTP {response.status_code}: {response.text[:200]}")
        return response

    def models(self) -> list[str]:
        data = self._request("GET", "/models")
        names = [m["id"] for m in data.get("data", [])]
        if not names:
            raise GeneratorUnavailable(f"generator at {self.base_url} serves no model")
        return names

    def _body(self, prompt: ChatPrompt, params: GenerationParams) -> dict:
        """The chat completion request for ``prompt`` (a back-end for one server adds its own sampling fields)."""
        body = {"model": self.model_name, "messages": prompt, "n": params.n, "temperature": params.temperature,
                "max_tokens": params.max_tokens, "top_p": params.top_p}
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        return {**self.extra_body, **body}

    def _one(self, prompt: ChatPrompt, params: GenerationParams) -> Generation:
        data = self._request("POST", "/chat/completions", json=self._body(prompt, params))
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        usage = data.get("usage") or {}
        extra = {"timings": data["timings"]} if "timings" in data else {}
        return Generation([(c["message"].get("content") or "").strip() for c in choices],
                          prompt_tokens=int(usage.get("prompt_tokens", 0)),
                          completion_tokens=int(usage.get("completion_tokens", 0)), extra=extra)

    def stream(self, prompt: ChatPrompt, params: GenerationParams) -> Iterator[str | Generation]:
        """Text deltas of one completion as the server sends them (``stream: true``), then its ``Generation``.
        Closing the iterator closes the connection, which stops the decoding on vLLM and llama.cpp's server.
        Connecting is retried like ``generate``; a connection lost mid-stream is ``GeneratorUnavailable``."""
        body = {**self._body(prompt, params), "n": 1, "stream": True, "stream_options": {"include_usage": True}}
        pieces: list[str] = []
        usage: dict = {}
        held = ""
        try:
            # Its own connection: a server may close it after the event stream, which must not fail the next call.
            with self._client.stream("POST", "/chat/completions", json=body, headers={"Connection": "close"}
                                     ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise GeneratorUnavailable(f"generator at {self.base_url} rejected the request "
                                               f"({response.status_code}): {response.text[:300]}")
                for line in response.iter_lines():
                    if not line.startswith("data:") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[5:])
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        # Whitespace waits for the next word, so the deltas add up to the stripped text.
                        held += (choice.get("delta") or {}).get("content") or ""
                        delta = held.rstrip()
                        if not pieces:
                            delta = delta.lstrip()
                        if delta:
                            held = held[len(held.rstrip()):]
                            pieces.append(delta)
                            yield delta
        except httpx.HTTPError as exc:
            raise GeneratorUnavailable(f"generator at {self.base_url} is unreachable or failing: {exc}") from exc
        yield Generation(["".join(pieces).strip()], prompt_tokens=int(usage.get("prompt_tokens", 0)),
                         completion_tokens=int(usage.get("completion_tokens", 0)))

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        if len(prompts) <= 1:
            return [self._one(p, params) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self._one(p, params), prompts))

    def alive(self, timeout: float = 10.0) -> bool:
        """Whether the server answers at all (``GET /models`` once, no retries): a server that answers but timed
        out on a request is busy, not gone. A 5xx counts as not answering (a proxy in front of a server that is
        gone)."""
        try:
            return self._client.get("/models", timeout=timeout).status_code < 500
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._client.close()
