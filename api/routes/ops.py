"""Operations: liveness, readiness (store and generator reachable) and Prometheus metrics."""

import os

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["operations"])


@router.get("/health")
def health() -> dict:
    """Liveness: the process answers; `pid` says which one (`redline serve --api-workers N` runs several)."""
    return {"status": "ok", "pid": os.getpid()}


@router.get("/ready", responses={503: {"description": "Not ready; `checks` says which part is not."}})
def ready(request: Request) -> JSONResponse:
    """Readiness of this API process: the store answers, the embedder and generator are loaded (or, for the
    `openai` back-end, the generator server answers), and the generator is not down: no call to it by any process
    on the store failed in the last minute since the last one that succeeded (`generator_error` then says when and
    why). `learners` (not a check: edits are accepted and queued without one) counts the learner processes alive
    on the store."""
    state = request.app.state
    checks = {}
    try:
        checks["store"] = bool(state.agent.ping())
    except Exception:
        checks["store"] = False
    checks["models_loaded"] = bool(state.warm.is_set()) and not state.warm_error
    checks["generator"] = _generator_reachable(state) if checks["models_loaded"] else False
    down = _generator_down(state) if checks["store"] else None
    if down is not None:
        checks["generator"] = False
    ok = all(checks.values())
    body = {"status": "ready" if ok else "not ready", "checks": checks, "learners": _learners(state)}
    if state.warm_error:
        body["error"] = state.warm_error
    if down is not None:
        body["generator_error"] = {"failed_at": down["failed_at"], "error": down["error"]}
    return JSONResponse(body, status_code=200 if ok else 503,
                        headers=None if ok else {"Retry-After": str(state.settings.retry_after_seconds)})


def _learners(state) -> int | None:
    try:
        return state.agent.learners()
    except Exception:  # the store check says why
        return None


def _generator_down(state) -> dict | None:
    try:
        return state.agent.generator_down()
    except Exception:  # the store check says why
        return None


def _generator_reachable(state) -> bool:
    settings = state.settings
    url = getattr(state.agent.generator, "base_url", None) if settings.generator in ("openai", "llama-server") else None
    if url is None or state.agent_injected:
        return True  # in process: loaded means reachable
    try:
        return httpx.get(url.rstrip("/") + "/models", timeout=2.0,
                         headers={"Authorization": f"Bearer {settings.generator_api_key}"}).status_code == 200
    except httpx.HTTPError:
        return False


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}})
def metrics(request: Request) -> Response:
    """Prometheus metrics of every redline process of this `serve` (API processes and learner): request latency by
    route, generation stages, learning and retraining latency, the learning queue's depth, the learning jobs parked,
    edits and generator tokens."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
