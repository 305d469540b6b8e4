"""The background learner: one thread drains the learning queue through ``Agent.run_jobs``, another retrains the
reward heads on its own schedule (``Agent.maintenance``).

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
    """``start()``, ``notify()`` after each accepted edit, ``stop()`` at shutdown.

    Two threads. The learner drains the queue in batches (``Agent.run_jobs``); the retrainer calls
    ``Agent.maintenance`` (which retrains the reward heads once enough new pairs arrived) every
    ``maintenance_interval`` seconds and whenever the learner learned something, whatever the queue holds, so
    retraining never waits for an empty queue and learning never waits for a retrain. Between two retrains the
    retrainer rests at least as long as the last one took, so retraining takes at most about half a core.
    """

    def __init__(self, agent: Agent, metrics: Metrics, *, retry_after: float = 10.0,
                 maintenance_interval: float = 300.0, poll_interval: float = 5.0):
        self.agent, self.metrics = agent, metrics
        self.retry_after, self.maintenance_interval = retry_after, maintenance_interval
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._retrain_due = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.learned = 0
        self.retrains = 0

    def start(self) -> "LearningWorker":
        self._threads = [threading.Thread(target=self._learn_loop, name="redline-learner", daemon=True),
                         threading.Thread(target=self._retrain_loop, name="redline-retrainer", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def notify(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop both threads: the learner finishes its current batch (the jobs not started stay queued for the
        next start); a retrain in progress is abandoned (checkpoints are published atomically, so none is
        half-written)."""
        self._stopping.set()
        self._wake.set()
        self._retrain_due.set()
        if self._threads:
            self._threads[0].join(timeout)
            self._threads[1].join(0.5)

    @property
    def alive(self) -> bool:
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    def _learn_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                backoff = self.drain()
            except Exception:  # the store itself failed; keep the thread alive and retry later
                log.exception("learning worker: draining jobs failed")
                backoff = True
            if self._stopping.is_set():
                break
            self._wake.wait(self.retry_after if backoff else self.poll_interval)  # a new edit wakes it early

    def _retrain_loop(self) -> None:
        rest = 0.0
        while not self._stopping.is_set():
            self._retrain_due.wait(self.maintenance_interval)
            if self._stopping.wait(rest):
                break
            self._retrain_due.clear()
            start = time.monotonic()
            self.metrics.retraining.set(1)
            try:
                summary = self.agent.maintenance()
            except Exception:
                log.exception("maintenance failed")
                summary = None
            finally:
                self.metrics.retraining.set(0)
            rest = time.monotonic() - start
            if summary is not None:
                self.retrains += 1
                self.metrics.observe_retrain(rest)

    def drain(self) -> bool:
        """Learn every queued edit; returns True when a job must wait (generator down): back off, retry later."""
        outcomes = self.agent.run_jobs(stopping=self._stopping.is_set, context=_job_log_context,
                                       on_outcome=self._observe)
        return bool(outcomes) and outcomes[-1].requeued

    def _observe(self, outcome: JobOutcome) -> None:
        if outcome.outcome == "learned":
            self.learned += 1
            self._retrain_due.set()  # new pairs may have crossed the retraining threshold
        self.metrics.observe_learning(outcome.seconds, outcome.outcome, outcome.result)
