"""The FastAPI application: ``create_app(settings, agent=None)``, the API role.

The lifespan builds the Agent once (unless one is passed in), loads the models in the background
(``/health`` answers at once, ``/ready`` once they are loaded), and at shutdown closes the agent (its store).
It learns nothing itself: accepted edits are queued in the store, and a learner process (``redline.learner``)
learns them. The inspector's pages live under ``/ui`` (``routes/ui.py``), with their sessions kept in the store
(``api/session.py``).
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from redline.agent import Agent, Settings

from .bodies import document_body_errors
from .errors import install_error_handlers
from .observability import Metrics, RequestMiddleware
from .routes import chat, generate, interactions, ops, ui, users
from .schemas import state_server_limits
from .session import install_sessions

__all__ = ["create_app"]
log = logging.getLogger(__name__)

DESCRIPTION = """Responses shaped by what each user's edits taught redline.

`POST /v1/generate` → text + `interaction_id`; `POST /v1/interactions/{id}/edit` with the text the user kept →
`202`, learned in the background (`GET /v1/interactions/{id}` says when); `GET /v1/users/{user}/preferences`
shows what was learned. `/v1/chat/completions`
is OpenAI-compatible (set `user`). Authenticate with `Authorization: Bearer <key>` (`redline keys create`).
Errors: `{"error": {"message", "type", "code"}}`; every response carries `X-Request-ID`."""


def create_app(settings: Settings | None = None, agent: Agent | None = None) -> FastAPI:
    """The HTTP app on ``settings`` (default: from the environment); pass ``agent`` to replace the one it
    builds. Either way the app closes the agent at shutdown."""
    settings = settings or (agent.settings if agent is not None else Settings())
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.agent = agent or Agent(settings)
        app.state.warm, app.state.warm_error = threading.Event(), None
        metrics.read_store(app.state.agent.queue_depth, app.state.agent.learners, app.state.agent.parked_jobs)
        if settings.auth and app.state.agent.keys.count_active() == 0:
            log.warning("auth is on and no API key exists: create one with `redline keys create --tenant NAME`, "
                        "or run locally without keys: `redline serve --no-auth`")
        elif not settings.auth:
            log.warning("auth is off (local use): every request acts in tenant 'default'")
        threading.Thread(target=_warm_up, args=(app,), name="redline-warm-up", daemon=True).start()
        try:
            yield
        finally:
            # Here, not after uvicorn.run returns: uvicorn re-raises SIGTERM once it has shut down, and the
            # process ends. Closing the store merges its WAL into the database file.
            app.state.agent.close()

    app = FastAPI(title="redline", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings, app.state.metrics, app.state.agent_injected = settings, metrics, agent is not None
    unexpected = install_error_handlers(app, retry_after=settings.retry_after_seconds, page_error=ui.page_error)
    for module in (generate, interactions, users, chat, ops):
        app.include_router(module.router)
    ui.install(app)
    _serve_schema_with_limits(app, settings)
    install_sessions(app, settings)
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes, metrics=metrics,
                       unexpected=unexpected)
    return app


def _serve_schema_with_limits(app: FastAPI, settings: Settings) -> None:
    """``/openapi.json`` states this server's limits (longest text, largest ``max_tokens``), which are settings,
    and the ``415`` every route with a body answers to a body that is not JSON."""
    build = app.openapi

    def openapi() -> dict:
        fresh = app.openapi_schema is None
        schema = build()
        return document_body_errors(state_server_limits(schema, settings)) if fresh else schema

    app.openapi = openapi


def _warm_up(app: FastAPI) -> None:
    """Load the embedder and the generator once, so the first request does not pay for it."""
    try:
        app.state.agent.embedder.encode(["warm up"])
        gen = app.state.agent.generator
        if hasattr(gen, "load"):
            gen.load()
    except Exception as exc:  # reported by /ready; generation routes answer 503 meanwhile
        log.warning("warm-up failed: %s", exc)
        app.state.warm_error = str(exc)
    finally:
        app.state.warm.set()
    log.info("models loaded; ready")
