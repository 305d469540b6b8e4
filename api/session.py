"""The inspector's browser session and its protection against cross-site request forgery.

The API key is sent once, to the login form. The session lives on the server (``Keys.start_session``, a row in the
store): the cookie holds its random id and the session's CSRF token (never the key), signed with a secret kept in
the store (Starlette's ``SessionMiddleware``, itsdangerous; one secret for every process and host on the store),
HttpOnly, SameSite=Strict, for ``SESSION_MAX_AGE`` seconds. Logging out ends the session on the server, and
revoking the key ends all of its sessions: a cookie copied before either opens nothing afterwards, in any process.
The cookie is ``Secure`` when the request came over HTTPS (by TLS to this server or, with
``REDLINE_TRUST_PROXY_HEADERS``, a proxy's ``X-Forwarded-Proto: https``) and always with ``REDLINE_SECURE_COOKIES``.

Forgery: a SameSite=Strict cookie is never sent with a request another site starts; on top of that, every
state-changing request made with the session carries the session's CSRF token (a form field, or the
``X-CSRF-Token`` header that the page's script sends to the JSON routes) and, where the browser says where it
comes from (``Origin``, ``Sec-Fetch-Site``), comes from this server.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from starlette.middleware.sessions import SessionMiddleware

from redline.agent import Settings

from .errors import ApiError

__all__ = ["SESSION_COOKIE", "SESSION_MAX_AGE", "CSRF_HEADER", "LoginRequired", "install_sessions", "csrf_token",
           "start", "end", "tenant", "check_csrf", "is_https"]

SESSION_COOKIE = "redline_session"
SESSION_MAX_AGE = 12 * 3600
CSRF_HEADER = "X-CSRF-Token"
OLD_SECRET_FILE = "session-secret"  # where the secret lived, per data directory, before the store kept it
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """A page was asked for without a session (auth on): the answer is the login form, then ``next``."""

    def __init__(self, next_path: str):
        super().__init__(next_path)
        self.next_path = next_path


def is_https(scope, trust_proxy_headers: bool) -> bool:
    """Whether the client's request came over HTTPS: TLS to this server, or (only when the proxy in front is
    trusted to say so) any ``X-Forwarded-Proto`` value ``https``. Any hop counts: a client that claims HTTPS over
    plain HTTP only gets a cookie its browser will not send back."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    if not trust_proxy_headers:
        return False
    for name, value in scope.get("headers") or ():
        if name == b"x-forwarded-proto" and "https" in (p.strip().lower() for p in value.decode("latin-1").split(",")):
            return True
    return False


class _SessionCookies:
    """``SessionMiddleware`` twice, with and without ``Secure``, picked per request; both sign with the store's
    secret, read when the first request arrives (the store opens in the app's lifespan, after this is built)."""

    def __init__(self, app, *, settings: Settings):
        self.app, self.settings = app, settings
        self._plain = self._secure = None

    def _build(self, starlette_app) -> None:
        secret = starlette_app.state.agent.keys.session_secret()
        # the secret this data directory used before: no longer read, and no secret should lie around unused
        (self.settings.data_dir / OLD_SECRET_FILE).unlink(missing_ok=True)
        common = {"secret_key": secret, "session_cookie": SESSION_COOKIE, "max_age": SESSION_MAX_AGE,
                  "same_site": "strict"}
        self._secure = SessionMiddleware(self.app, https_only=True, **common)
        self._plain = SessionMiddleware(self.app, https_only=False, **common)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if self._plain is None:
            self._build(scope["app"])
        secure = self.settings.secure_cookies or is_https(scope, self.settings.trust_proxy_headers)
        await (self._secure if secure else self._plain)(scope, receive, send)


def install_sessions(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(_SessionCookies, settings=settings)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (the login form has one before anyone logs in)."""
    if "csrf" not in request.session:
        request.session["csrf"] = secrets.token_urlsafe(32)
    return request.session["csrf"]


def start(request: Request, key: dict) -> None:
    """Log in with the key row ``{"id", "tenant"}``: a new session (and CSRF token), whatever was there."""
    end(request)
    session_id = request.app.state.agent.keys.start_session(key["id"], key["tenant"], SESSION_MAX_AGE)
    request.session.update(sid=session_id, csrf=secrets.token_urlsafe(32))


def end(request: Request) -> None:
    """Log out: the session ends on the server (a copy of the cookie opens nothing) and the cookie is cleared."""
    session_id = request.session.get("sid")
    if isinstance(session_id, str):
        request.app.state.agent.keys.end_session(session_id)
    request.session.clear()


def tenant(request: Request) -> str | None:
    """The tenant of the session while it lasts on the server (not ended, not expired, its key active), else None
    (and the cookie is cleared)."""
    session_id = request.session.get("sid")
    if not isinstance(session_id, str):
        return None
    found = request.app.state.agent.keys.session_tenant(session_id)
    if found is None:
        request.session.clear()
    return found


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
