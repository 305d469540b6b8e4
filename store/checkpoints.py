"""Trained models as rows: each checkpoint is one blob with its JSON metadata, the newest of its kind is the
current one. Every process reads them from the store, so a retraining done by any learner is what every API
process scores with, and removing a checkpoint (after a hard delete) removes it everywhere at once."""

from __future__ import annotations

import json
import time

from ._sqlite import SQLite, now_iso

__all__ = ["Checkpoints"]


class Checkpoints:
    def __init__(self, sql: SQLite):
        self._sql = sql

    def publish(self, kind: str, data: bytes, meta: dict | None = None, *, keep: int = 2) -> str:
        """Store ``data`` as the new current checkpoint of ``kind`` and remove the older ones beyond ``keep`` (the new
        one included: ``keep=1`` leaves it alone), in one transaction; returns its name."""
        name = f"ckpt-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{time.time_ns() % 1_000_000_000:09d}"
        with self._sql.transaction() as conn:
            conn.execute("INSERT INTO checkpoints (kind, name, meta, data, created_at) VALUES (?, ?, ?, ?, ?)",
                         (kind, name, json.dumps(meta or {}), data, now_iso()))
            conn.execute("DELETE FROM checkpoints WHERE kind = ? AND id NOT IN"
                         " (SELECT id FROM checkpoints WHERE kind = ? ORDER BY id DESC LIMIT ?)", (kind, kind, keep))
        return name

    def current(self, kind: str) -> dict | None:
        """``{"name", "meta"}`` of the current checkpoint of ``kind`` (one indexed read, no blob), or None."""
        row = self._sql.one("SELECT name, meta FROM checkpoints WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,))
        return {"name": row["name"], "meta": json.loads(row["meta"])} if row else None

    def data(self, name: str) -> bytes | None:
        """The blob of checkpoint ``name`` (None once it was removed)."""
        row = self._sql.one("SELECT data FROM checkpoints WHERE name = ?", (name,))
        return row["data"] if row else None

    def names(self, kind: str) -> list[str]:
        """Every stored checkpoint of ``kind``, oldest first."""
        return [r["name"] for r in self._sql.query("SELECT name FROM checkpoints WHERE kind = ? ORDER BY id", (kind,))]

    def remove_all(self, kind: str) -> int:
        """Remove every checkpoint of ``kind`` (e.g. when the pairs they were trained on are all deleted)."""
        with self._sql.transaction() as conn:
            removed = conn.execute("DELETE FROM checkpoints WHERE kind = ?", (kind,)).rowcount
        self._sql.checkpoint()
        return removed
