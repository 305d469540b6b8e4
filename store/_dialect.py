"""The few places where PostgreSQL's SQL differs from SQLite's, in one object each adapter carries.

The store's SQL is written once, in the subset both engines share (``?`` and ``:name`` placeholders, ``INSERT ...
ON CONFLICT DO NOTHING``/``DO UPDATE``, ``RETURNING id``); what remains differs here: the scalar maximum, the
insertion order of rows without an integer key (SQLite's ``rowid``, a ``BIGSERIAL id`` on PostgreSQL) and the job
claim (``FOR UPDATE SKIP LOCKED``). Row locks are the adapters' (``lock_users``: a no-op under SQLite's one writer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Dialect", "SQLITE", "POSTGRES"]


@dataclass(frozen=True)
class Dialect:
    name: str
    greatest: str  # the scalar maximum of several values: MAX(a, b) / GREATEST(a, b)
    skip_locked: bool  # claims skip rows another transaction locked (else the one writer serialises them)

    def sql(self, text: str) -> str:
        """``text`` as this engine reads it (placeholders, ``rowid``)."""
        return text if self.name == "sqlite" else _to_postgres(text)


@lru_cache(maxsize=1024)
def _to_postgres(text: str) -> str:
    text = text.replace("%", "%%")
    text = re.sub(r"(?<![:\w]):([a-z_]+)\b", r"%(\1)s", text)
    text = text.replace("?", "%s")
    return re.sub(r"\browid\b", "id", text)


SQLITE = Dialect("sqlite", greatest="MAX", skip_locked=False)
POSTGRES = Dialect("postgresql", greatest="GREATEST", skip_locked=True)
