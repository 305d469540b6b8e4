"""A scripted OpenAI-compatible generator server (no language model), for API tests and benchmarks: the API
processes and the learner of a real ``redline serve`` (``REDLINE_GENERATOR=openai``) all call it.

``PYTHONPATH=tests python -m doubles.server --port 0`` answers ``POST /v1/chat/completions`` (``n`` choices;
``stream`` too) with ``scripted_answer`` of the prompt (what ``ScriptedGenerator`` answers in process) and
``GET /v1/models``.
``GET /stats`` counts the calls by kind: ``draft`` (task prompts), ``revision``, ``inference`` (a preference inferred
from an edit), ``aggregation`` and ``other``; ``/stats?subjects=1`` adds how often each kept text was inferred
from, so a crash test counts the inferences per edit, not only the rows.

Switches, read from the environment: ``REDLINE_SCRIPTED_DELAY`` slows every call (seconds, e.g. ``0.3``) or the
calls of some kinds (``inference=1,aggregation=0.2``); while the file named by
``REDLINE_SCRIPTED_DOWN_FILE`` exists it answers 503 (an outage); while the one named by
``REDLINE_SCRIPTED_BROKEN_FILE`` exists it answers 200 with a body that has no ``choices`` (a generator the client
did not foresee: an unexpected error on the redline side).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from redline.agent.prompts import AGGREGATE_PREFERENCES, INFER_PREFERENCE, REVISE_FOR_PREFERENCE

from .generators import scripted_answer

__all__ = ["create_generator_app", "prompt_kind", "wait_ready"]
MODEL = "scripted"
KINDS = ("draft", "revision", "inference", "aggregation", "other")
_INFER_HEAD = INFER_PREFERENCE.split("{")[0]
_KEPT_START = INFER_PREFERENCE.split("{edited}")[0].split("}")[-1]  # text between {task} and {edited}
_KEPT_END = INFER_PREFERENCE.split("{edited}")[1].split("{")[0]
_PREFIXES = {"inference": _INFER_HEAD, "aggregation": AGGREGATE_PREFERENCES.split("{")[0],
             "revision": REVISE_FOR_PREFERENCE.split("{")[0]}


def wait_ready(url: str, timeout: float = 180) -> bool:
    """Poll ``url/ready`` until it answers 200 (True) or ``timeout`` seconds pass (False). Not ready yet: a refused
    connection (the server does not listen yet) and a request that times out (a server warming up on a loaded
    machine can take longer than httpx's default)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url + "/ready", timeout=10).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


def prompt_kind(messages: list[dict]) -> str:
    """What a chat prompt asks for: inference, aggregation, revision, draft (a task prompt: system + user) or
    other (the evaluation's simulated user)."""
    last = str(messages[-1].get("content") or "") if messages else ""
    for kind, prefix in _PREFIXES.items():
        if last.startswith(prefix):
            return kind
    return "draft" if messages and messages[0].get("role") == "system" else "other"


def _kept_text(messages: list[dict]) -> str:
    """The kept text an inference prompt quotes."""
    last = str(messages[-1].get("content") or "")
    return last.split(_KEPT_START, 1)[-1].split(_KEPT_END, 1)[0]


def parse_delay(spec: str | None) -> dict[str, float]:
    """``REDLINE_SCRIPTED_DELAY`` as seconds per kind: ``"0.3"`` → every kind, ``"inference=1"`` → that kind."""
    if not spec or not spec.strip():
        return {}
    if "=" not in spec:
        return {kind: float(spec) for kind in KINDS}
    return {kind.strip(): float(seconds) for kind, seconds in (part.split("=") for part in spec.split(","))}


def create_generator_app(*, delay: dict[str, float] | None = None, down_file: str | None = None,
                         broken_file: str | None = None) -> Starlette:
    delay = delay or {}
    calls: Counter = Counter()
    subjects: Counter = Counter()
    down, broken = (Path(down_file) if down_file else None), (Path(broken_file) if broken_file else None)

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "redline"}]})

    async def chat(request: Request):
        body = await request.json()
        messages = body.get("messages") or []
        kind = prompt_kind(messages)
        calls[kind] += 1
        if kind == "inference":
            subjects[_kept_text(messages)] += 1
        if down is not None and down.exists():
            return JSONResponse({"error": {"message": "scripted generator is down"}}, status_code=503)
        if broken is not None and broken.exists():
            return JSONResponse({"error": "scripted generator is broken"})
        if delay.get(kind):
            await asyncio.sleep(delay[kind])
        texts = [scripted_answer(messages, i) for i in range(int(body.get("n") or 1))]
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in messages)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": sum(len(t.split()) for t in texts),
                 "total_tokens": prompt_tokens + sum(len(t.split()) for t in texts)}
        created = int(time.time())
        if body.get("stream"):
            async def events():
                for i, text in enumerate(texts):
                    for word in text.split(" "):
                        chunk = {"id": "scripted", "object": "chat.completion.chunk", "created": created,
                                 "model": MODEL, "choices": [{"index": i, "delta": {"content": word + " "},
                                                              "finish_reason": None}]}
                        yield f"data: {json.dumps(chunk)}\n\n"
                    done = {"id": "scripted", "object": "chat.completion.chunk", "created": created, "model": MODEL,
                            "choices": [{"index": i, "delta": {}, "finish_reason": "stop"}], "usage": usage}
                    yield f"data: {json.dumps(done)}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse({"id": "scripted", "object": "chat.completion", "created": created, "model": MODEL,
                             "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"} for i, text in enumerate(texts)],
                             "usage": usage})

    async def stats(request: Request) -> JSONResponse:
        out = {"calls": {k: calls[k] for k in KINDS}}
        if request.query_params.get("subjects"):
            out["subjects"] = dict(subjects)
        return JSONResponse(out)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/stats", stats), Route("/health", health), Route("/ready", health)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_generator_app(delay=parse_delay(os.environ.get("REDLINE_SCRIPTED_DELAY")),
                               down_file=os.environ.get("REDLINE_SCRIPTED_DOWN_FILE"),
                               broken_file=os.environ.get("REDLINE_SCRIPTED_BROKEN_FILE"))
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
