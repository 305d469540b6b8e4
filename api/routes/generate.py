"""POST /v1/generate: a personalized response for one user, as one JSON body or streamed as server-sent events."""

import json
from typing import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from redline.agent import AgentError, GenerateOptions
from redline.agent.types import StreamStart, TextDelta

from ..bodies import JsonRoute
from ..deps import AgentDep, MetricsDep, SettingsDep, TenantDep
from ..errors import agent_error_body
from ..observability import Metrics
from ..schemas import GenerateRequest, GenerateResponse
from ._common import check_max_tokens, errors

router = APIRouter(tags=["generate"], route_class=JsonRoute)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post("/v1/generate", response_model=GenerateResponse, responses={**errors(503), 200: {
    "description": "The response; with `stream: true` a text/event-stream of `start`, `delta`... and `done` (or "
                   "`error`) events.", "content": {"application/json": {}, "text/event-stream": {}}}})
def generate(body: GenerateRequest, agent: AgentDep, tenant: TenantDep, settings: SettingsDep,
             metrics: MetricsDep):
    """Write a response for `user` on `context`, shaped by the preferences learned from the user's past
    edits on similar contexts and fixed by the user's learned edit rules. Returns the text, the interaction id
    to post the edit to, the preference used, the neighbours it came from and the rules applied. `503` with
    `Retry-After` when the generator is down.

    With `stream: true`: server-sent events. `start` comes first (`interaction_id`, `preference`, `neighbours`,
    `streams`: whether `delta`s follow, `rules_may_rewrite`), then `delta` events (`{"text": ...}`) as the draft
    decodes, then `done` with the whole response (the same body as without streaming). Deltas follow only when one
    candidate is drafted: best_of_n / rps with a trained reward choose once every candidate exists, so their text
    comes with `done`. The user's edit rules change the whole text at the end: when `rules_may_rewrite` is true,
    `done.text` (with `applied_rules`) is the text to show, and it may differ from the deltas. A generator failure
    after `start` ends the stream with an `error` event (the error body); nothing is stored then, and the
    interaction id of `start` exists only once `done` arrived."""
    max_tokens = check_max_tokens(body.max_tokens, settings)
    options = GenerateOptions(strategy=body.strategy, n=body.n, max_tokens=max_tokens, temperature=body.temperature,
                              seed=body.seed, rules=body.rules, use_preference=body.use_preference)
    if body.stream:  # errors before the first event (bad input, an outage while aggregating) are plain responses
        events = agent.generate_stream(body.user, body.context, body.task, options, tenant=tenant)
        return StreamingResponse(_server_sent(events, metrics), media_type="text/event-stream", headers=SSE_HEADERS)
    result = agent.generate(body.user, body.context, body.task, options, tenant=tenant)
    metrics.observe_generation(result)
    return GenerateResponse.of(result)


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _server_sent(events: Iterator, metrics: Metrics) -> Iterator[str]:
    try:
        for event in events:
            if isinstance(event, StreamStart):
                yield sse("start", event.to_dict())
            elif isinstance(event, TextDelta):
                yield sse("delta", {"text": event.text})
            else:
                metrics.observe_generation(event)
                yield sse("done", GenerateResponse.of(event).model_dump(mode="json"))
    except AgentError as exc:  # the status line is sent: the failure is the last event
        yield sse("error", agent_error_body(exc))
