"""OpenAI-compatible chat completions and model list: an OpenAI SDK client personalizes by changing
``base_url`` and setting ``user``. With ``stream`` the reply is sent as SSE chunks as it decodes (in full first when
the user's edit rules may rewrite it)."""

import json
import re
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from redline.agent import AgentError, GenerateOptions, GenerateResult
from redline.agent.types import TextDelta

from ..bodies import JsonRoute
from ..deps import AgentDep, MetricsDep, SettingsDep, TenantDep
from ..errors import ApiError, agent_error_body
from ..schemas import ChatRequest, ModelCard, ModelList, Usage
from ._common import check_max_tokens, errors

router = APIRouter(tags=["openai"], route_class=JsonRoute)
INTERACTION_HEADER = "X-Redline-Interaction-Id"
RULES_HEADER = "X-Redline-Applied-Rules"
MODEL_ID = "redline"
_CHUNK = re.compile(r"\S+\s*|\s+")


@router.get("/v1/models", response_model=ModelList, responses=errors())
def list_models(tenant: TenantDep) -> ModelList:
    """The model to name in chat completions (any name is accepted and answered by redline)."""
    return ModelList(data=[ModelCard(id=MODEL_ID, created=0)])


@router.post("/v1/chat/completions", responses={**errors(503), 200: {
    "description": "A chat.completion object, or with `stream: true` a text/event-stream of chat.completion.chunk "
                   "objects ending with `data: [DONE]`. Both carry `interaction_id` (also in the "
                   f"`{INTERACTION_HEADER}` header) to post the user's edit to, and `applied_rules`, the user's "
                   f"edit rules that changed the reply (their ids also in `{RULES_HEADER}`).",
    "content": {"application/json": {}, "text/event-stream": {}}}})
def chat_completions(body: ChatRequest, agent: AgentDep, tenant: TenantDep, settings: SettingsDep,
                     metrics: MetricsDep):
    """OpenAI-compatible chat completion, personalized for `user` (required). The last message must be the
    user's; it is the context, earlier user/assistant turns are the history (system messages are ignored:
    redline writes its own). Post the user's edit of the reply to `/v1/interactions/{interaction_id}/edit`."""
    if not body.user:
        raise ApiError(400, "user is required: set `user` to the id of the person the reply is for",
                       "missing_user")
    last = body.messages[-1]
    if last.role != "user" or not last.text().strip():
        raise ApiError(400, "the last message must be a non-empty user message", "invalid_input")
    check_max_tokens(body.max_tokens, settings)  # both are checked, whichever is used (the schema states both)
    max_tokens = check_max_tokens(body.max_completion_tokens or body.max_tokens, settings)
    history = [{"role": m.role, "content": m.text()} for m in body.messages[:-1] if m.role in ("user", "assistant")]
    options = GenerateOptions(max_tokens=max_tokens, temperature=body.temperature, seed=body.seed, history=history,
                              rules=body.rules)
    created = int(time.time())
    if body.stream:
        events = agent.generate_stream(body.user, last.text(), "chat", options, tenant=tenant)
        start = next(events)
        if not start.rules_may_rewrite:  # nothing will change the text once decoded: stream it as it decodes
            return StreamingResponse(
                _live_chunks(start, events, body, created, metrics), media_type="text/event-stream",
                headers={INTERACTION_HEADER: start.interaction_id, RULES_HEADER: "", "Cache-Control": "no-cache"})
        # The user's edit rules may rewrite the reply, and chunks cannot be taken back: the reply in full first.
        result = list(events)[-1]
    else:
        result = agent.generate(body.user, last.text(), "chat", options, tenant=tenant)
    metrics.observe_generation(result)
    cid = f"chatcmpl-{result.interaction_id}"
    usage = Usage.of(result).model_dump()
    extra = {"interaction_id": result.interaction_id, "preference": result.preference,
             "applied_rules": result.applied_rules}
    headers = {INTERACTION_HEADER: result.interaction_id,
               RULES_HEADER: ",".join(str(r["id"]) for r in result.applied_rules)}
    if not body.stream:
        return JSONResponse({
            "id": cid, "object": "chat.completion", "created": created, "model": body.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": usage, **extra}, headers=headers)

    def events_of_whole_reply():
        yield _chunk(cid, created, body.model, extra, {"role": "assistant", "content": ""})
        for piece in _CHUNK.findall(result.text):
            yield _chunk(cid, created, body.model, extra, {"content": piece})
        yield from _closing_chunks(cid, created, body, extra, usage)

    return StreamingResponse(events_of_whole_reply(), media_type="text/event-stream",
                             headers={**headers, "Cache-Control": "no-cache"})


def _chunk(cid: str, created: int, model: str, extra: dict, delta: dict, finish: str | None = None) -> str:
    data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
    return f"data: {json.dumps(data)}\n\n"


def _closing_chunks(cid: str, created: int, body: ChatRequest, extra: dict, usage: dict):
    yield _chunk(cid, created, body.model, extra, {}, "stop")
    if body.stream_options and body.stream_options.include_usage:
        data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body.model,
                "choices": [], "usage": usage, **extra}
        yield f"data: {json.dumps(data)}\n\n"
    yield "data: [DONE]\n\n"


def _live_chunks(start, events, body: ChatRequest, created: int, metrics):
    """Chunks as the reply decodes (no edit rule applies here, so nothing changes it afterwards)."""
    cid = f"chatcmpl-{start.interaction_id}"
    extra = {"interaction_id": start.interaction_id, "preference": start.preference, "applied_rules": []}
    yield _chunk(cid, created, body.model, extra, {"role": "assistant", "content": ""})
    try:
        for event in events:
            if isinstance(event, TextDelta):
                yield _chunk(cid, created, body.model, extra, {"content": event.text})
            elif isinstance(event, GenerateResult):
                metrics.observe_generation(event)
                yield from _closing_chunks(cid, created, body, extra, Usage.of(event).model_dump())
    except AgentError as exc:  # the status line is sent: the failure is the last event
        yield f"data: {json.dumps(agent_error_body(exc))}\n\n"
