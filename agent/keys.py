"""API keys for the edges (``redline keys``, the server's auth): each bound to one tenant; and the inspector's
browser sessions opened with one, kept in the store so that every API process sees a logout at once."""

from __future__ import annotations

import re

from redline.store import NotFound, Store

from .errors import InvalidInput, UnknownApiKey

__all__ = ["Keys", "TENANT_PATTERN"]

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
_TENANT = re.compile(TENANT_PATTERN)


class Keys:
    """``create``, ``list``, ``revoke`` keys; ``tenant(key)`` authenticates one. Only hashes are stored.
    ``start_session``/``session_tenant``/``end_session``: the sessions a key opens (revoking it ends them)."""

    def __init__(self, store: Store):
        self._keys = store.keys
        self._sessions = store.sessions

    def create(self, tenant: str, name: str = "") -> tuple[str, dict]:
        """A new key for ``tenant``; returns ``(key, row)``. The key is shown once and never stored."""
        if not isinstance(tenant, str) or not _TENANT.match(tenant):
            raise InvalidInput("tenant must be 1-64 characters: letters, digits and . _ - "
                               "(starting with a letter or digit)")
        return self._keys.create(tenant, name)

    def list(self, *, tenant: str | None = None) -> list[dict]:
        return self._keys.list(tenant=tenant)

    def revoke(self, key_id: int) -> dict:
        try:
            return self._keys.revoke(key_id)
        except NotFound as exc:
            raise UnknownApiKey(f"no active API key with id {key_id}") from exc

    def tenant(self, key: str) -> str | None:
        """The tenant of a valid, unrevoked key, else None."""
        return self._keys.tenant(key)

    def authenticate(self, key: str) -> dict | None:
        """``{"id", "tenant"}`` of a valid, unrevoked key, else None: a session keeps the id, not the key."""
        row = self._keys.find(key)
        return {"id": row["id"], "tenant": row["tenant"]} if row else None

    def count_active(self) -> int:
        return self._keys.count_active()

    def start_session(self, key_id: int, tenant: str, max_age: int) -> str:
        """A new session of key ``key_id`` (of ``tenant``) for ``max_age`` seconds; returns its id, which only the
        client keeps (the store has its hash)."""
        return self._sessions.start(key_id, tenant, max_age)

    def session_tenant(self, session_id: str) -> str | None:
        """The tenant of a session that has not ended or expired and whose key is still active, else None."""
        row = self._sessions.find(session_id)
        return row["tenant"] if row else None

    def end_session(self, session_id: str) -> None:
        """End a session (logging out): from now on its id opens nothing, in any process on this store."""
        self._sessions.end(session_id)

    def session_secret(self) -> str:
        """The secret that signs the session cookies: one per store, so every process serving it agrees."""
        return self._sessions.secret("session-cookie")
