"""API keys, each bound to a tenant; only their sha256 hashes are stored."""

from __future__ import annotations

import hashlib
import secrets

from ._sqlite import SQLite, now_iso
from .errors import NotFound

__all__ = ["ApiKeys"]

_COLUMNS = "id, tenant, name, prefix, created_at, revoked_at"


class ApiKeys:
    def __init__(self, sql: SQLite):
        self._sql = sql

    @staticmethod
    def hash(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def _row(self, key_id: int) -> dict:
        return self._sql.one(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))

    def create(self, tenant: str, name: str = "") -> tuple[str, dict]:
        """A new random key bound to ``tenant``; returns ``(key, row)``. The key itself is not stored."""
        key = "rl-" + secrets.token_urlsafe(32)
        with self._sql.transaction() as conn:
            cur = conn.execute("INSERT INTO api_keys (tenant, name, key_hash, prefix, created_at) VALUES (?,?,?,?,?)",
                               (tenant, name, self.hash(key), key[:10], now_iso()))
        return key, self._row(cur.lastrowid)

    def tenant(self, key: str) -> str | None:
        """The tenant of a valid, unrevoked key, else None."""
        row = self.find(key)
        return row["tenant"] if row else None

    def find(self, key: str) -> dict | None:
        """The row (id, tenant, ...) of a valid, unrevoked key, else None."""
        return self._sql.one(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                             (self.hash(key),))

    def active_tenant(self, key_id: int) -> str | None:
        """The tenant of key ``key_id`` while it is not revoked, else None."""
        row = self._sql.one("SELECT tenant FROM api_keys WHERE id = ? AND revoked_at IS NULL", (key_id,))
        return row["tenant"] if row else None

    def list(self, *, tenant: str | None = None) -> list[dict]:
        """Every key (never the key itself), oldest first; only ``tenant``'s when given."""
        sql = f"SELECT {_COLUMNS} FROM api_keys"
        if tenant is None:
            return self._sql.query(sql + " ORDER BY id")
        return self._sql.query(sql + " WHERE tenant = ? ORDER BY id", (tenant,))

    def revoke(self, key_id: int) -> dict:
        """Revoke an active key; ``NotFound`` when there is none with that id."""
        with self._sql.transaction() as conn:
            cur = conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                               (now_iso(), key_id))
            if cur.rowcount == 0:
                raise NotFound(f"no active API key with id {key_id}")
        return self._row(key_id)

    def count_active(self) -> int:
        return self._sql.one("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL")["n"]
