"""The inspector: server-rendered pages over the same agent methods as the JSON routes, with no logic of their own.

``/ui`` lists the tenant's users; ``/ui/users/{user}`` shows what redline learned about one of them (preferences
with the edit that taught each, rules, routing, edit cost over time); a login form (auth on) and the
confirmation step of a hard delete. The page's buttons call the JSON routes (``PATCH``/``DELETE``) with the
session (``static/ui.js``); every form post here checks the session's CSRF token (``api/session.py``).
Jinja2 escapes every value it prints, so text a user submitted shows as text.
"""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from redline.agent import word_diff

from .. import charts, session
from ..deps import AgentDep, PageTenantDep, SettingsDep
from .users import User

__all__ = ["router", "install", "page_error"]

router = APIRouter(prefix="/ui", include_in_schema=False)
_HERE = Path(__file__).resolve().parents[1]
templates = Jinja2Templates(directory=_HERE / "templates")
templates.env.filters["when"] = lambda stamp: f"{stamp[:10]} {stamp[11:16]} UTC" if stamp else "–"
PREFERENCES_PER_PAGE = 20
USERS_PER_PAGE = 100
# Pages load only this server's script and stylesheet: an injected <script> would not run even if it got through.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
}
Window = Annotated[int, Query(ge=1, le=10_000)]
Offset = Annotated[int, Query(ge=0, le=2**31)]


def _render(request: Request, name: str, context: dict, status: int = 200, tenant: str | None = None) -> HTMLResponse:
    settings = request.app.state.settings
    context = {"auth": settings.auth, "tenant": tenant, "csrf_token": session.csrf_token(request), **context}
    return templates.TemplateResponse(request, name, context, status_code=status, headers=HEADERS)


def page_error(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
    """An error under /ui as a page: the status and message the JSON routes would give."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    response = _render(request, "error.html", {"status": status, "reason": reason, "message": message}, status)
    response.headers.update(headers or {})
    return response


def _next(path: str) -> str:
    """Where to go after logging in: a page of the inspector, never another site."""
    return path if path.startswith("/ui") and not path.startswith("//") else "/ui"


def install(app: FastAPI) -> None:
    """The pages, their stylesheet and script, and the way to the login form for a page asked for without a
    session."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=_HERE / "static"), name="ui-static")

    @app.exception_handler(session.LoginRequired)
    async def login_first(request: Request, exc: session.LoginRequired):
        # relative, like every redirect here: right behind a proxy that terminates TLS too
        return RedirectResponse(f"/ui/login?{urlencode({'next': exc.next_path})}", 303)


@router.get("/login")
def login_form(request: Request, settings: SettingsDep, next: str = "/ui") -> Response:
    if not settings.auth or session.tenant(request) is not None:
        return RedirectResponse(_next(next), 303)
    return _render(request, "login.html", {"next": _next(next), "error": None})


@router.post("/login")
def login(request: Request, agent: AgentDep, key: Annotated[str, Form()] = "",
          csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/ui") -> Response:
    """Check the API key once; the session keeps its id and tenant."""
    session.check_csrf(request, csrf_token)
    found = agent.keys.authenticate(key.strip()) if key.strip() else None
    if found is None:
        return _render(request, "login.html", {"next": _next(next), "error": "invalid or revoked API key"}, 401)
    session.start(request, found)
    return RedirectResponse(_next(next), 303)


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    session.check_csrf(request, csrf_token)
    session.end(request)
    return RedirectResponse("/ui/login", 303)


@router.get("")
def users_page(request: Request, agent: AgentDep, tenant: PageTenantDep, offset: Offset = 0,
               window: Window = 10) -> Response:
    """The tenant's users, most recently active first (``Agent.users``, as ``GET /v1/users``)."""
    data = agent.users(tenant=tenant, limit=USERS_PER_PAGE, offset=offset, window=window)
    return _render(request, "users.html", {"data": data, "flash": request.session.pop("flash", None)},
                   tenant=tenant)


@router.get("/users/{user}")
def user_page(request: Request, user: User, agent: AgentDep, tenant: PageTenantDep, offset: Offset = 0,
              window: Window = 10) -> Response:
    """One user (``Agent.preferences``, as ``GET /v1/users/{user}/preferences``, and ``Agent.edit_history``)."""
    data = agent.preferences(user, tenant=tenant, limit=PREFERENCES_PER_PAGE, offset=offset, window=window)
    more = offset + len(data["items"]) < data["stats"]["preferences"]
    data["next_offset"] = offset + len(data["items"]) if more else None
    for item in data["items"]:
        edited = item["draft"] is not None and item["edited_text"] is not None
        item["diff"] = word_diff(item["draft"], item["edited_text"]) if edited else None
    return _render(request, "user.html", {
        "data": data, "rules": data.get("rules"), "routing": charts.routing_bars(data["routing"]),
        "costs": charts.cost_line(agent.edit_history(user, tenant=tenant))}, tenant=tenant)


@router.get("/users/{user}/delete")
def confirm_delete(request: Request, user: User, agent: AgentDep, tenant: PageTenantDep) -> Response:
    """The confirmation step of a hard delete: what goes, and the user id typed again."""
    data = agent.preferences(user, tenant=tenant, limit=1)
    return _render(request, "delete.html", {"data": data, "error": None}, tenant=tenant)


@router.post("/users/{user}/delete")
def delete_user(request: Request, user: User, agent: AgentDep, tenant: PageTenantDep,
                csrf_token: Annotated[str, Form()] = "", confirm: Annotated[str, Form()] = "") -> Response:
    """Hard delete (``Agent.delete_user``, as ``DELETE /v1/users/{user}``) once the user id was typed."""
    session.check_csrf(request, csrf_token)
    if confirm.strip() != user:
        data = agent.preferences(user, tenant=tenant, limit=1)  # an unknown user is a 404 before anything else
        error = f"the confirmation does not match: type {user} to delete this user"
        return _render(request, "delete.html", {"data": data, "error": error}, 400, tenant=tenant)
    removed = agent.delete_user(user, tenant=tenant)
    rows = ", ".join(f"{n} {table}" for table, n in removed.items() if n)
    request.session["flash"] = f"Deleted {user} ({rows})."
    return RedirectResponse("/ui", 303)
