"""The background job queue. ``learn``: one per accepted edit, queued in the edit's own transaction and marked done
in the learning step's. ``retrain``: queued by a hard delete that removed preference pairs, done once a retraining
read the pairs after it.

Jobs are claimed, never scanned: ``claim`` marks the oldest claimable jobs 'running' for one owner with a lease in
one statement, so two learners (threads, processes or hosts on one store) never hold the same job. On SQLite the one
writer serialises claims; on PostgreSQL a claim locks the rows it picks ``FOR UPDATE SKIP LOCKED`` (concurrent claims
take different jobs, never wait for each other), and a queued job NOTIFYs ``redline_jobs`` so waiting learners on
any host wake at once (polling stays the fallback). A learner renews
its leases while it works; one that dies leaves its jobs to be claimed again once their lease ends. A job whose
``run_after`` lies ahead (a back-off) is not claimable before then.

A learning job that kept failing is ``parked`` (never claimed) with its ``error`` and ``error_kind`` ('generator' or
'error') until ``retry`` queues it again; one whose interaction was deleted is ``dropped``.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

from ._sqlite import now_iso

__all__ = ["Jobs", "KINDS"]

KINDS = ("learn", "retrain")
# The oldest claimable job ids: pending ones, and running ones whose lease ended, none held back by run_after. Two
# scans of the (kind, status, id) index, each stopping at :limit, so the done jobs (most of the table) are never
# read: a poll costs microseconds however long the history.
_OLDEST_CLAIMABLE = (
    "SELECT id FROM (SELECT id FROM jobs WHERE kind = :kind AND status = 'pending'"
    " AND (run_after IS NULL OR run_after <= :now) ORDER BY id LIMIT :limit) AS pending"
    " UNION ALL SELECT id FROM (SELECT id FROM jobs WHERE kind = :kind AND status = 'running'"
    " AND (lease_until IS NULL OR lease_until <= :now) AND (run_after IS NULL OR run_after <= :now)"
    " ORDER BY id LIMIT :limit) AS expired ORDER BY id LIMIT :limit")
# PostgreSQL: the same jobs, locked as they are picked; rows another claim holds are skipped, not waited for.
_PICK_SKIP_LOCKED = (
    "SELECT id FROM jobs WHERE kind = :kind AND (run_after IS NULL OR run_after <= :now) AND (status = 'pending'"
    " OR (status = 'running' AND (lease_until IS NULL OR lease_until <= :now))) ORDER BY id LIMIT :limit"
    " FOR UPDATE SKIP LOCKED")
CHANNEL = "redline_jobs"


class Jobs:
    def __init__(self, sql: Any):
        self._sql = sql
        self._queued = threading.Event()  # set when a job was queued (by this process, or notified): wakes a learner
        self._listening = False

    def enqueue(self, conn: Any, interaction_id: str | None, *, stamp: str, kind: str = "learn") -> None:
        """Queue a job inside the caller's transaction ``conn`` (a ``retrain`` job has no interaction)."""
        conn.execute("INSERT INTO jobs (kind, interaction_id, status, attempts, created_at, updated_at)"
                     " VALUES (?, ?, 'pending', 0, ?, ?)", (kind, interaction_id, stamp, stamp))
        self._sql.notify(conn, CHANNEL)
        self._queued.set()

    def finish(self, conn: Any, interaction_id: str, *, stamp: str, kind: str = "learn") -> None:
        """Mark the interaction's job done inside the caller's transaction ``conn``."""
        conn.execute("UPDATE jobs SET status = 'done', claimed_by = NULL, lease_until = NULL, updated_at = ?"
                     " WHERE interaction_id = ? AND kind = ?", (stamp, interaction_id, kind))

    def delete(self, conn: Any, interaction_ids: list[str]) -> int:
        """Remove the jobs of these interactions inside ``conn``; returns how many."""
        if not interaction_ids:
            return 0
        marks = ",".join("?" * len(interaction_ids))
        return conn.execute(f"DELETE FROM jobs WHERE interaction_id IN ({marks})", interaction_ids).rowcount

    def claimable(self, *, kind: str = "learn") -> bool:
        """Whether a job of ``kind`` could be claimed now (a read: polling this costs the writer nothing)."""
        return self._sql.one(_OLDEST_CLAIMABLE, {"kind": kind, "now": now_iso(), "limit": 1}) is not None

    def claim(self, owner: str, *, limit: int = 1, lease_seconds: float = 60.0, kind: str = "learn") -> list[dict]:
        """Claim up to ``limit`` of the oldest claimable jobs of ``kind`` for ``owner``, atomically: each is marked
        'running', claimed by ``owner`` until its lease ends, and counted an attempt. Claimable: pending, or running
        under a lease that ended (its learner died), and not held back by ``run_after``. Returns them, oldest
        first."""
        now = now_iso()
        pick = _PICK_SKIP_LOCKED if self._sql.dialect.skip_locked else _OLDEST_CLAIMABLE
        with self._sql.transaction() as conn:
            rows = conn.execute(
                "UPDATE jobs SET status = 'running', claimed_by = :owner, lease_until = :until,"
                f" attempts = attempts + 1, updated_at = :now WHERE id IN ({pick}) RETURNING *",
                {"owner": owner, "until": now_iso(lease_seconds), "now": now, "kind": kind, "limit": limit})
            cols = [c[0] for c in rows.description]
            claimed = [dict(zip(cols, row)) for row in rows.fetchall()]
        return sorted(claimed, key=lambda job: job["id"])

    def renew(self, owner: str, *, lease_seconds: float = 60.0) -> int:
        """Extend the lease of every job ``owner`` holds; returns how many it extended. On PostgreSQL a job whose
        row another transaction has locked (the owner's own learning step, finishing it) is skipped, not waited
        for: that step locks its jobs one by one as it finishes them while an UPDATE here locks them in table
        order, so waiting could close a circle; PostgreSQL then aborted the learning step, and the learner ran the
        batch again one job at a time, asking the generator to infer every edit of it a second time."""
        held = "claimed_by = ? AND status = 'running'"
        if self._sql.dialect.skip_locked:
            held = f"id IN (SELECT id FROM jobs WHERE {held} FOR UPDATE SKIP LOCKED)"
        with self._sql.transaction() as conn:
            return conn.execute(f"UPDATE jobs SET lease_until = ? WHERE {held}",
                                (now_iso(lease_seconds), owner)).rowcount

    def mark(self, job_ids: int | Sequence[int], status: str, *, owner: str | None = None, error: str | None = None,
             error_kind: str | None = None, run_after: str | None = None) -> None:
        """Set the status of one job or several (one transaction), ending their claim; ``error`` and ``error_kind``
        say why it failed, ``run_after`` when it may be claimed again. With ``owner``, only jobs that owner still
        holds change (one whose lease ended and that another learner claimed is not touched)."""
        ids = [job_ids] if isinstance(job_ids, int) else list(job_ids)
        held = " AND claimed_by = ?" if owner is not None else ""
        with self._sql.transaction() as conn:
            conn.executemany("UPDATE jobs SET status = ?, error = ?, error_kind = ?, claimed_by = NULL,"
                             f" lease_until = NULL, run_after = ?, updated_at = ? WHERE id = ?{held}",
                             [(status, error, error_kind, run_after, now_iso(), i, *((owner,) if held else ()))
                              for i in ids])

    def retry(self, *, error_kind: str | None = None, tenant: str | None = None, waiting: bool = True,
              reset_waiting: bool = True) -> int:
        """Queue again, at once, the learning jobs that are parked (their attempts reset) and, with ``waiting``, those
        waiting out a back-off after a failure (their attempts reset too with ``reset_waiting``, else kept, so a job
        that keeps failing is still parked in the end); only those whose last failure was of ``error_kind``
        (default: any), of interactions in ``tenant`` (default: every tenant). Returns how many."""
        where, params = ["kind = 'learn'"], [now_iso()]
        if error_kind is not None:
            where.append("error_kind = ?")
            params.append(error_kind)
        if tenant is not None:
            where.append("interaction_id IN (SELECT i.id FROM interactions i JOIN users u ON u.id = i.user_id"
                         " WHERE u.tenant = ?)")
            params.append(tenant)
        clear = "status = 'pending', run_after = NULL, claimed_by = NULL, lease_until = NULL, updated_at = ?"
        with self._sql.transaction() as conn:
            n = conn.execute(f"UPDATE jobs SET {clear}, attempts = 0, error = NULL, error_kind = NULL"
                             f" WHERE status = 'parked' AND {' AND '.join(where)}", params).rowcount
            if waiting:
                reset = ", attempts = 0, error = NULL, error_kind = NULL" if reset_waiting else ""
                n += conn.execute(f"UPDATE jobs SET {clear}{reset} WHERE status = 'pending' AND error_kind IS NOT NULL"
                                  f" AND run_after IS NOT NULL AND {' AND '.join(where)}", params).rowcount
            if n:
                self._sql.notify(conn, CHANNEL)  # learners on every host look at once (PostgreSQL)
        if n:
            self._queued.set()
        return n

    def failing(self, *, error_kind: str) -> int:
        """Learning jobs whose last attempt failed with ``error_kind``: parked, or waiting out a back-off."""
        return self._sql.one("SELECT COUNT(*) AS n FROM jobs WHERE kind = 'learn' AND status IN ('parked', 'pending')"
                             " AND error_kind = ?", (error_kind,))["n"]

    def parked(self) -> int:
        """Learning jobs parked (failed every attempt; waiting for a retry)."""
        return self._sql.one("SELECT COUNT(*) AS n FROM jobs WHERE kind = 'learn' AND status = 'parked'")["n"]

    def release(self, job_ids: Sequence[int], *, owner: str | None = None) -> None:
        """Put claimed jobs back to 'pending' without counting that attempt (they were not tried)."""
        held = " AND claimed_by = ?" if owner is not None else ""
        with self._sql.transaction() as conn:
            conn.executemany("UPDATE jobs SET status = 'pending', claimed_by = NULL, lease_until = NULL,"
                             f" attempts = {self._sql.dialect.greatest}(attempts - 1, 0), updated_at = ?"
                             f" WHERE id = ? AND status = 'running'{held}",
                             [(now_iso(), i, *((owner,) if held else ())) for i in job_ids])

    def release_owner(self, owner: str) -> int:
        """Hand back every job ``owner`` still holds (its process is known to be gone: a learner restarted in the same
        slot), without waiting for the leases to end; the attempt stays counted. Returns how many."""
        with self._sql.transaction() as conn:
            return conn.execute("UPDATE jobs SET status = 'pending', claimed_by = NULL, lease_until = NULL,"
                                " updated_at = ? WHERE claimed_by = ? AND status = 'running'",
                                (now_iso(), owner)).rowcount

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a job queued by this process, or (PostgreSQL) notified by any process
        (True) — otherwise jobs queued by other processes are seen by polling ``claimable``; then re-arm."""
        if not self._listening:
            self._listening = True
            self._sql.listen(CHANNEL, self._queued.set)
        woken = self._queued.wait(timeout)
        self._queued.clear()
        return woken

    def get(self, interaction_id: str, *, kind: str = "learn") -> dict | None:
        """The interaction's job, or None."""
        return self._sql.one("SELECT * FROM jobs WHERE interaction_id = ? AND kind = ?", (interaction_id, kind))

    def queued(self, *, kind: str = "learn") -> int:
        """Jobs of ``kind`` pending or running: the learning queue's depth."""
        return self._sql.one("SELECT COUNT(*) AS n FROM jobs WHERE status IN ('pending', 'running') AND kind = ?",
                             (kind,))["n"]
