"""Reaching under a store in tests (whichever back-end): run SQL, count rows, list tables and columns."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


@contextmanager
def opened(data_dir: Path, env: dict[str, str]):
    """The store redline's processes use with ``env`` (``database_env``) and data directory ``data_dir``."""
    from redline.store import open_store

    store = open_store(env.get("REDLINE_DATABASE_URL"), data_dir / "redline.db")
    try:
        yield store
    finally:
        store.close()


def execute(store, sql: str, params: tuple = ()) -> int:
    """Run a write in its own transaction; returns the rows it changed."""
    with store._sql.transaction() as conn:
        return conn.execute(sql, params).rowcount


def rows(store, sql: str, params: tuple = ()) -> list[dict]:
    return store._sql.query(sql, params)


def count(store, table: str, where: str = "", params: tuple = ()) -> int:
    return store._sql.one(f"SELECT COUNT(*) AS n FROM {table}" + (f" WHERE {where}" if where else ""), params)["n"]


def job_counts(store, kind: str | None = None) -> dict[str, int]:
    """Jobs per status (of one ``kind``, or all): what a test expects the queue to hold."""
    where, params = ("WHERE kind = ?", (kind,)) if kind else ("", ())
    return {r["status"]: r["n"] for r in rows(store, f"SELECT status, COUNT(*) AS n FROM jobs {where} GROUP BY status",
                                               params)}


def tables(store) -> list[str]:
    if store.backend == "sqlite":
        return [r["name"] for r in rows(store, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    return [r["table_name"] for r in rows(store, "SELECT table_name FROM information_schema.tables"
                                                 " WHERE table_schema = current_schema()")]


def columns(store, table: str) -> list[str]:
    if store.backend == "sqlite":
        return [r["name"] for r in rows(store, f"PRAGMA table_info({table})")]
    return [r["column_name"] for r in rows(store, "SELECT column_name FROM information_schema.columns"
                                                  " WHERE table_schema = current_schema() AND table_name = ?",
                                           (table,))]
