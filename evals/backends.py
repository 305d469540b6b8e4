"""How the harness reaches the agent: in process (``LocalBackend``) or over HTTP (``HTTPBackend``).

Both expose ``generate(...) -> Draft``, ``feedback(...) -> Outcome`` and ``nearest_edits(...)``; the
harness never touches generation itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from agent import Agent, GenerateOptions, Settings, prompts

from .methods import Method

__all__ = ["Draft", "Outcome", "LocalBackend", "HTTPBackend", "LockedEmbedder", "BackendError"]


class BackendError(RuntimeError):
    pass


@dataclass
class Draft:
    interaction_id: str
    text: str
    preference: str | None
    tokens_in: int
    tokens_out: int


@dataclass
class Outcome:
    cost: int
    preference: str | None
    tokens_in: int = 0
    tokens_out: int = 0


class LockedEmbedder:
    """Serialises ``encode`` across the harness's worker threads; everything else is passed through."""

    def __init__(self, inner):
        self._inner = inner
        self._lock = threading.Lock()

    def encode(self, texts, *args, **kwargs):
        with self._lock:
            return self._inner.encode(texts, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _options(method: Method, *, preference: str | None, history: list[dict], max_tokens: int | None,
             temperature: float | None, seed: int | None) -> GenerateOptions:
    kwargs = dict(max_tokens=max_tokens, temperature=temperature, seed=seed, history=history,
                  use_retrieval=method.use_retrieval, strategy=method.strategy)
    if method.n is not None:
        kwargs["n"] = method.n
    if method.oracle:
        kwargs["preference"] = preference
    return GenerateOptions(**kwargs)


class LocalBackend:
    """One fresh Agent (own data dir and store) for one (method, seed) stream; shared embedder and generator."""

    def __init__(self, method: Method, data_dir: Path, *, embedder, generator, settings: dict | None = None):
        self.method = method
        overrides = dict(settings or {})
        overrides.update(data_dir=data_dir, k=method.k)
        self.agent = Agent(Settings(**overrides), embedder=embedder, generator=generator)

    def generate(self, user: str, context: str, task: str, *, oracle_preference: str | None = None,
                 max_tokens: int | None = None, temperature: float | None = None, seed: int | None = None) -> Draft:
        history: list[dict] = []
        if self.method.icl_k:
            history = prompts.icl_edit_history(self.agent.nearest_edits(user, context, self.method.icl_k))
        result = self.agent.generate(user, context, task, _options(
            self.method, preference=oracle_preference, history=history, max_tokens=max_tokens,
            temperature=temperature, seed=seed))
        return Draft(result.interaction_id, result.text, result.preference, result.tokens_in, result.tokens_out)

    def feedback(self, interaction_id: str, edited: str) -> Outcome:
        if self.method.learns:
            r = self.agent.learn(interaction_id, edited)
            return Outcome(r.cost, r.preference, r.tokens_in, r.tokens_out)
        receipt = self.agent.submit_edit(interaction_id, edited)
        return Outcome(receipt.cost, None)

    def close(self) -> None:
        self.agent.store.close()


class HTTPBackend:
    """The same calls against a running redline server (``POST /v1/generate``,
    ``POST /v1/interactions/{id}/edit``). ICL-edit needs in-process access to past edits and is not offered."""

    def __init__(self, method: Method, base_url: str, *, api_key: str | None = None, timeout: float = 600.0,
                 client=None):
        import httpx

        if method.icl_k:
            raise BackendError(f"method {method.name} is not available over HTTP (needs past edits in process)")
        self.method = method
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)

    def _post(self, path: str, body: dict) -> dict:
        import httpx

        try:
            resp = self.client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot reach the redline server: {exc}") from exc
        if resp.status_code >= 400:
            raise BackendError(f"{path} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def generate(self, user: str, context: str, task: str, *, oracle_preference: str | None = None,
                 max_tokens: int | None = None, temperature: float | None = None, seed: int | None = None) -> Draft:
        body = {"user": user, "context": context, "task": task, "strategy": self.method.strategy,
                "use_retrieval": self.method.use_retrieval}
        for key, value in (("max_tokens", max_tokens), ("temperature", temperature), ("seed", seed),
                           ("n", self.method.n), ("preference", oracle_preference if self.method.oracle else None)):
            if value is not None:
                body[key] = value
        data = self._post("/v1/generate", body)
        return Draft(data["interaction_id"], data["text"], data.get("preference"), data.get("tokens_in", 0),
                     data.get("tokens_out", 0))

    def feedback(self, interaction_id: str, edited: str) -> Outcome:
        body = {"edited_text": edited, "learn": self.method.learns, "wait": True}
        data = self._post(f"/v1/interactions/{interaction_id}/edit", body)
        return Outcome(int(data.get("cost", 0)), data.get("preference") if self.method.learns else None,
                       data.get("tokens_in", 0), data.get("tokens_out", 0))

    def close(self) -> None:
        self.client.close()
