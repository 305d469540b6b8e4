"""The background learner: one thread that drains the store's job table through ``agent.process_edit``.

Durability comes from the store: an accepted edit and its job are committed together before the
``202``; ``complete_learning`` marks the job done in the same transaction as the learning step, so
after a crash the jobs left 'pending' or 'running' are simply learned on the next start, once.
"""

from __future__ import annotations

import logging
import threading
import time

from redline.agent import Agent, AgentError, GeneratorUnavailable
from redline.retrieval import RetrievalError
from redline.store import StoreError

from .observability import Metrics, request_id_var

__all__ = ["LearningWorker"]
log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


class LearningWorker:
    """``start()``, ``notify()`` after each accepted edit, ``stop()`` at shutdown."""

    def __init__(self, agent: Agent, metrics: Metrics, *, retry_after: float = 10.0,
                 maintenance_interval: float = 300.0, poll_interval: float = 5.0):
        self.agent, self.metrics = agent, metrics
        self.retry_after, self.maintenance_interval, self.poll_interval = retry_after, maintenance_interval, poll_interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.learned = 0

    def start(self) -> "LearningWorker":
        self._thread = threading.Thread(target=self._run, name="redline-learner", daemon=True)
        self._thread.start()
        return self

    def notify(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        last_maintenance = time.monotonic()
        while not self._stopping.is_set():
            self._wake.clear()
            learned_before = self.learned
            try:
                backoff = self.drain()
            except Exception:  # the store itself failed; keep the thread alive and retry later
                log.exception("learning worker: draining jobs failed")
                backoff = True
            # New pairs may have crossed the retraining threshold: check now rather than at the next interval.
            if self.learned > learned_before or time.monotonic() - last_maintenance >= self.maintenance_interval:
                last_maintenance = time.monotonic()
                try:
                    self.agent.maintenance()
                except Exception:
                    log.exception("maintenance failed")
            self._wake.wait(self.retry_after if backoff else self.poll_interval)  # a new edit wakes it early

    def drain(self) -> bool:
        """Learn every queued edit; returns True when the generator is down (back off, retry later)."""
        store = self.agent.store
        while not self._stopping.is_set():
            jobs = store.jobs.pending(limit=50)
            if not jobs:
                return False
            for job in jobs:
                if self._stopping.is_set():
                    return False
                if self._learn(job):
                    return True
        return False

    def _learn(self, job: dict) -> bool:
        store = self.agent.store
        token = request_id_var.set(f"job-{job['id']}")
        start = time.perf_counter()
        try:
            store.jobs.mark(job["id"], "running")
            result = self.agent.process_edit(job["interaction_id"])
            if result.already_learned:  # complete_learning marks its job done; this covers an older crash
                store.jobs.mark(job["id"], "done")
            self.learned += 1
            self.metrics.observe_learning(time.perf_counter() - start, "learned", result)
            return False
        except GeneratorUnavailable as exc:
            log.warning("generator unavailable; learning of %s retried in %ss: %s", job["interaction_id"],
                        self.retry_after, exc)
            store.jobs.mark(job["id"], "pending", error=str(exc))
            self.metrics.observe_learning(time.perf_counter() - start, "retry")
            return True
        except (AgentError, RetrievalError, StoreError) as exc:  # e.g. the user was deleted meanwhile
            log.info("learning job %s dropped: %s", job["id"], exc)
            store.jobs.mark(job["id"], "failed", error=str(exc))
            self.metrics.observe_learning(time.perf_counter() - start, "dropped")
            return False
        except Exception as exc:
            log.exception("learning job %s failed", job["id"])
            attempts = (job.get("attempts") or 0) + 1
            store.jobs.mark(job["id"], "failed" if attempts >= MAX_ATTEMPTS else "pending", error=repr(exc))
            self.metrics.observe_learning(time.perf_counter() - start, "error")
            return attempts < MAX_ATTEMPTS  # back off before retrying
        finally:
            request_id_var.reset(token)
