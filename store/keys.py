"""API keys, each bound to a tenant; only their sha256 hashes are stored. The inspector's sessions opened with a key,
and the secrets every process on the store shares."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from ._sqlite import SQLite, now_iso
from .errors import NotFound

__all__ = ["ApiKeys", "Sessions"]

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
            cur = conn.execute("INSERT INTO api_keys (tenant, name, key_hash, prefix, created_at) VALUES (?,?,?,?,?)"
                               " RETURNING id",
                               (tenant, name, self.hash(key), key[:10], now_iso()))
            key_id = cur.fetchone()[0]
        return key, self._row(key_id)

    def tenant(self, key: str) -> str | None:
        """The tenant of a valid, unrevoked key, else None."""
        row = self.find(key)
        return row["tenant"] if row else None

    def find(self, key: str) -> dict | None:
        """The row (id, tenant, ...) of a valid, unrevoked key, else None."""
        return self._sql.one(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                             (self.hash(key),))

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
            conn.execute("DELETE FROM ui_sessions WHERE key_id = ?", (key_id,))  # its sessions end with it
        return self._row(key_id)

    def count_active(self) -> int:
        return self._sql.one("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL")["n"]


class Sessions:
    """The inspector's browser sessions, kept here so that every process serving them agrees at once when one
    ends; and the secrets those processes share.

    A session id is random (256 bits) and only its sha256 is stored: the database never holds what the cookie
    proves. A session lives until it expires, is ended, or its key is revoked (``ApiKeys.revoke`` ends them all)."""

    def __init__(self, sql: SQLite):
        self._sql = sql

    @staticmethod
    def _hash(session_id: str) -> str:
        return hashlib.sha256(session_id.encode("utf-8")).hexdigest()

    def start(self, key_id: int, tenant: str, max_age: int) -> str:
        """A new session for key ``key_id`` of ``tenant`` that lasts ``max_age`` seconds; returns its id (for the
        cookie). Expired sessions are removed on the way."""
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(timezone.utc)
        created, expires = (t.isoformat(timespec="milliseconds") for t in (now, now + timedelta(seconds=max_age)))
        with self._sql.transaction() as conn:
            conn.execute("DELETE FROM ui_sessions WHERE expires_at <= ?", (created,))
            conn.execute("INSERT INTO ui_sessions (id_hash, key_id, tenant, created_at, expires_at) VALUES (?,?,?,?,?)",
                         (self._hash(session_id), key_id, tenant, created, expires))
        return session_id

    def find(self, session_id: str) -> dict | None:
        """``{"key_id", "tenant"}`` of a session that has not expired or ended, whose key is still active; else
        None."""
        return self._sql.one(
            "SELECT s.key_id, s.tenant FROM ui_sessions s JOIN api_keys k ON k.id = s.key_id "
            "WHERE s.id_hash = ? AND s.expires_at > ? AND k.revoked_at IS NULL AND k.tenant = s.tenant",
            (self._hash(session_id), now_iso()))

    def end(self, session_id: str) -> bool:
        """End a session; False when there was none (already ended or expired and removed)."""
        with self._sql.transaction() as conn:
            return conn.execute("DELETE FROM ui_sessions WHERE id_hash = ?", (self._hash(session_id),)).rowcount > 0

    def secret(self, name: str) -> str:
        """The secret called ``name``: made (random, 384 bits) by whichever process asks first, the same for all
        after that."""
        row = self._sql.one("SELECT value FROM secrets WHERE name = ?", (name,))
        if row is None:
            with self._sql.transaction() as conn:
                conn.execute("INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                             (name, secrets.token_urlsafe(48), now_iso()))
            row = self._sql.one("SELECT value FROM secrets WHERE name = ?", (name,))
        return row["value"]
