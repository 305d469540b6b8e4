"""The background learner: one thread that drains the learning queue through ``Agent.run_jobs``.

Durability comes from the store: an accepted edit and its job are committed together before the
``202``; the learning step marks the job done in the same transaction, so after a crash the jobs left
'pending' or 'running' are simply learned on the next start, once. What a failure does to a job is the agent's
one rule (``redline.agent.jobs``); this thread only backs off when a job must wait, and records metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

from redline.agent import Agent, JobOutcome

from .observability import Metrics, request_id_var

__all__ = ["LearningWorker"]
log = logging.getLogger(__name__)


@contextmanager
def _job_log_context(job: dict):
    """Every log line written while a job runs names it (``job-N``) where a request id would stand."""
    token = request_id_var.set(f"job-{job['id']}")
    try:
        yield
    finally:
        request_id_var.reset(token)


class LearningWorker:
    """``start()``, ``notify()`` after each accepted edit, ``stop()`` at shutdown."""

    def __init__(self, agent: Agent, metrics: Metrics, *, retry_after: float = 10.0,
                 maintenance_interval: float = 300.0, poll_interval: float = 5.0):
        self.agent, self.metrics = agent, metrics
        self.retry_after, self.maintenance_interval = retry_after, maintenance_interval
        self.poll_interval = poll_interval
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
        """Learn every queued edit; returns True when a job must wait (generator down): back off, retry later."""
        outcomes = self.agent.run_jobs(stopping=self._stopping.is_set, context=_job_log_context,
                                       on_outcome=self._observe)
        return bool(outcomes) and outcomes[-1].requeued

    def _observe(self, outcome: JobOutcome) -> None:
        if outcome.outcome == "learned":
            self.learned += 1
        self.metrics.observe_learning(outcome.seconds, outcome.outcome, outcome.result)
