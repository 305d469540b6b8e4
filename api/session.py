"""The inspector's browser session and its protection against cross-site request forgery.

The API key is sent once, to the login form; the session then keeps the key's id and tenant (never the key) in
a cookie signed with a secret of this data directory (Starlette's ``SessionMiddleware``, itsdangerous), HttpOnly
and SameSite=Strict, for ``SESSION_MAX_AGE`` seconds. Every request made with it checks that the key is still
active, so revoking a key ends its sessions.

Forgery: a SameSite=Strict cookie is never sent with a request another site starts; on top of that, every
state-changing request made with the session carries the session's CSRF token (a form field, or the
``X-CSRF-Token`` header that the page's script sends to the JSON routes) and, where the browser says where it
comes from (``Origin``, ``Sec-Fetch-Site``), comes from this server.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from starlette.middleware.sessions import SessionMiddleware

from .errors import ApiError

__all__ = ["SESSION_COOKIE", "SESSION_MAX_AGE", "CSRF_HEADER", "LoginRequired", "install_sessions", "csrf_token",
           "start", "end", "tenant", "check_csrf", "session_secret"]

SESSION_COOKIE = "redline_session"
SESSION_MAX_AGE = 12 * 3600
CSRF_HEADER = "X-CSRF-Token"
SECRET_FILE = "session-secret"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """A page was asked for without a session (auth on): the answer is the login form, then ``next``."""

    def __init__(self, next_path: str):
        super().__init__(next_path)
        self.next_path = next_path


def session_secret(data_dir: Path) -> str:
    """The key that signs session cookies: made once per data directory (readable by its owner only), so
    sessions survive a restart and a second data directory never accepts the first one's cookies."""
    path = Path(data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_urlsafe(48))
    return path.read_text(encoding="ascii").strip()


def install_sessions(app: FastAPI, data_dir: Path) -> None:
    app.add_middleware(SessionMiddleware, secret_key=session_secret(data_dir), session_cookie=SESSION_COOKIE,
                       max_age=SESSION_MAX_AGE, same_site="strict", https_only=False)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (the login form has one before anyone logs in)."""
    if "csrf" not in request.session:
        request.session["csrf"] = secrets.token_urlsafe(32)
    return request.session["csrf"]


def start(request: Request, key: dict) -> None:
    """Log in with the key row ``{"id", "tenant"}``: a new session (and CSRF token), whatever was there."""
    request.session.clear()
    request.session.update(key_id=key["id"], tenant=key["tenant"], csrf=secrets.token_urlsafe(32))


def end(request: Request) -> None:
    request.session.clear()


def tenant(request: Request) -> str | None:
    """The tenant of the session's key while the key is active, else None (and the session is dropped)."""
    key_id, bound = request.session.get("key_id"), request.session.get("tenant")
    if key_id is None:
        return None
    if request.app.state.agent.keys.tenant_of(key_id) != bound:
        end(request)
        return None
    return bound


def check_csrf(request: Request, token: str | None) -> None:
    """403 unless ``token`` is the session's CSRF token and the request does not come from another site."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise ApiError(403, f"cross-site request refused (Sec-Fetch-Site: {fetch_site})", "csrf_failed")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise ApiError(403, "cross-origin request refused (the Origin is not this server)", "csrf_failed")
    expected = request.session.get("csrf")
    if not token or not expected or not secrets.compare_digest(token, expected):
        raise ApiError(403, "missing or wrong CSRF token: reload the page and try again", "csrf_failed")
