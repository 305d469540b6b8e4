"""Dependencies injected into routes: the Agent built once in the lifespan, and the caller's tenant (from the
Bearer key, or from the inspector's session cookie).

All are coroutines that do not block (at most one indexed read, on the event loop thread's own store connection):
FastAPI runs a plain function dependency in its thread pool, and each such hand-off costs more than that read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from redline.agent import Agent, Settings

from . import session
from .errors import ApiError
from .observability import Metrics

__all__ = ["AgentDep", "TenantDep", "PageTenantDep", "SettingsDep", "MetricsDep", "DEFAULT_TENANT"]

DEFAULT_TENANT = "default"
_bearer = HTTPBearer(auto_error=False, description="An API key from `redline keys create --tenant NAME`.")


async def get_agent(request: Request) -> Agent:
    return request.app.state.agent


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_tenant(request: Request,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The tenant bound to the Bearer key; every request acts inside it. With auth off: 'default'.

    Without the header, the inspector's session cookie stands for the key (its page calls these routes), and a
    state-changing request made with it must carry the session's CSRF token in ``X-CSRF-Token``."""
    if not request.app.state.settings.auth:
        return DEFAULT_TENANT
    if credentials is None or not credentials.credentials:
        if (from_session := session.tenant(request)) is not None:
            if request.method not in session.SAFE_METHODS:
                session.check_csrf(request, request.headers.get(session.CSRF_HEADER))
            return from_session
        raise ApiError(401, "missing API key: send the header 'Authorization: Bearer <key>' "
                            "(create one with `redline keys create --tenant NAME`)", "missing_api_key",
                       {"WWW-Authenticate": "Bearer"})
    tenant = request.app.state.agent.keys.tenant(credentials.credentials)
    if tenant is None:
        raise ApiError(401, "invalid or revoked API key", "invalid_api_key", {"WWW-Authenticate": "Bearer"})
    return tenant


async def get_page_tenant(request: Request) -> str:
    """The tenant an inspector page acts in: the session's (auth on; without one, the login form) or 'default'."""
    if not request.app.state.settings.auth:
        return DEFAULT_TENANT
    tenant = session.tenant(request)
    if tenant is None:
        raise session.LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return tenant


AgentDep = Annotated[Agent, Depends(get_agent)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
TenantDep = Annotated[str, Depends(get_tenant)]
PageTenantDep = Annotated[str, Depends(get_page_tenant)]
