"""API keys for the edges (``redline keys``, the server's auth): each bound to one tenant."""

from __future__ import annotations

import re

from redline.store import NotFound, Store

from .errors import InvalidInput, UnknownApiKey

__all__ = ["Keys", "TENANT_PATTERN"]

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
_TENANT = re.compile(TENANT_PATTERN)


class Keys:
    """``create``, ``list``, ``revoke`` keys; ``tenant(key)`` authenticates one. Only hashes are stored."""

    def __init__(self, store: Store):
        self._keys = store.keys

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

    def tenant_of(self, key_id: int) -> str | None:
        """The tenant of key ``key_id`` while it is not revoked, else None (a revoked key ends its sessions)."""
        return self._keys.active_tenant(key_id)

    def count_active(self) -> int:
        return self._keys.count_active()
