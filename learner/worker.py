"""The learner's threads: one drains the learning queue through ``Agent.run_jobs``, another retrains the reward heads
(``Agent.train_rewards``, which first runs the retraining hard deletes queued), a third says the learner is alive.

Durability comes from the store: an accepted edit and its job are committed together before the ``202``; jobs are
claimed with a lease and the learning step marks its job done in the same transaction as its writes, so a learner
that dies leaves its jobs to be claimed again (at once by a learner restarted in its slot, by any other once the
lease ends), and each is learned once. What a failure does to a job is the agent's one rule
(``redline.agent.jobs``: a failed job backs off, then is parked); these threads only wait, back off when a job
must wait, record metrics, and queue again the jobs the generator failed once it answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

from redline.agent import Agent, JobOutcome
from redline.runtime.logs import request_id_var

from .metrics import LearnerMetrics

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
    """``start()``, ``stop()`` at shutdown.

    The learner drains the queue in batches (``Agent.run_jobs``); when it is empty it waits for a job queued in this
    process or, polling the store every ``poll_interval`` seconds, by any other. The retrainer calls
    ``Agent.train_rewards`` every ``maintenance_interval`` seconds and whenever the learner learned something, whatever
    the queue holds, so retraining never waits for an empty queue and learning never waits for a retrain; between
    two retrains it rests so that retraining takes at most ``retrain_share`` of the time (default a quarter: three
    times as long as the last one took; the two threads share one interpreter lock, and a retraining's new
    checkpoint makes the next learning steps replay their users' states). A retraining a hard delete queued (polled
    every second) runs without that rest.
    """

    def __init__(self, agent: Agent, metrics: LearnerMetrics | None = None, *, retry_after: float = 10.0,
                 maintenance_interval: float = 300.0, poll_interval: float = 0.1, alive_seconds: float = 15.0,
                 retrain_share: float = 0.25, probe_interval: float = 30.0):
        self.agent, self.metrics = agent, metrics or LearnerMetrics()
        self.retry_after, self.maintenance_interval = retry_after, maintenance_interval
        self.retrain_share = retrain_share
        self.poll_interval, self.alive_seconds = poll_interval, alive_seconds
        self.probe_interval = probe_interval
        self._retrain_due = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.learned = 0
        self.retrains = 0

    def start(self) -> "LearningWorker":
        released = self.agent.release_claims()  # held by this learner's slot before a crash: its process is gone
        if released:
            log.info("learner %s: %d jobs its previous process held are queued again", self.agent.owner, released)
        self._threads = [threading.Thread(target=self._learn_loop, name="redline-learner", daemon=True),
                         threading.Thread(target=self._retrain_loop, name="redline-retrainer", daemon=True),
                         threading.Thread(target=self._alive_loop, name="redline-alive", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop: the learner finishes its current batch (the jobs not started stay queued for the next learner); a
        retrain in progress is abandoned (checkpoints are published in one transaction, so none is half-written).
        Returns whether the learner thread finished within ``timeout``."""
        self._stopping.set()
        self._retrain_due.set()
        if not self._threads:
            return True
        self._threads[0].join(timeout)
        self._threads[1].join(0.5)
        self._threads[2].join(0.5)
        finished = not self._threads[0].is_alive()
        try:
            self.agent.learner_gone()
        except Exception:
            log.warning("could not withdraw the learner's sign of life; it ends with its lease", exc_info=True)
        return finished

    @property
    def alive(self) -> bool:
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    def _retry_generator_jobs(self, outcomes: list[JobOutcome], next_probe: float) -> float:
        """Queue again the jobs the generator failed once it answers: checked after a learning step that called it
        successfully, and probed every ``probe_interval`` seconds. Returns when to probe next."""
        now = time.monotonic()
        try:
            if now >= next_probe:
                self.agent.retry_generator_jobs(probe=True)
                return now + self.probe_interval
            if any(o.outcome == "learned" for o in outcomes):
                self.agent.retry_generator_jobs(probe=False)
        except Exception:
            log.warning("learner: retrying the jobs the generator failed did not work", exc_info=True)
            return now + self.probe_interval
        return next_probe

    def _learn_loop(self) -> None:
        next_probe = time.monotonic() + self.probe_interval
        while not self._stopping.is_set():
            try:
                outcomes = self.agent.run_jobs(stopping=self._stopping.is_set, context=_job_log_context,
                                               on_outcome=self._observe)
            except Exception:  # the store itself failed; keep the thread alive and retry later
                log.exception("learner: draining jobs failed")
                outcomes, backoff = [], True
            else:
                backoff = bool(outcomes) and outcomes[-1].requeued
            if self._stopping.is_set():
                break
            next_probe = self._retry_generator_jobs(outcomes, next_probe)
            if backoff:
                self._stopping.wait(min(self.retry_after, max(0.0, next_probe - time.monotonic())))
            elif not outcomes:
                self.agent.wait_for_jobs(self.poll_interval)

    def _retrain_loop(self) -> None:
        rest, last = 0.0, time.monotonic()
        while not self._stopping.is_set():
            self._retrain_due.wait(max(self.poll_interval, 1.0))
            if self._stopping.is_set():
                break
            forget = self.agent.retrain_queued()
            due = self._retrain_due.is_set() or time.monotonic() - last >= self.maintenance_interval
            if not (forget or due):
                continue
            if not forget and self._stopping.wait(rest):
                break
            self._retrain_due.clear()
            start = last = time.monotonic()
            self.metrics.retraining.set(1)
            try:
                summary = self.agent.train_rewards()
            except Exception:
                log.exception("reward retraining failed")
                summary = None
            finally:
                self.metrics.retraining.set(0)
            took = time.monotonic() - start
            rest = took * (1 / self.retrain_share - 1)
            if summary is not None:
                self.retrains += 1
                self.metrics.observe_retrain(took)

    def _alive_loop(self) -> None:
        while True:
            try:
                self.agent.learner_alive(seconds=self.alive_seconds)
            except Exception:
                log.warning("learner: could not renew its sign of life", exc_info=True)
            if self._stopping.wait(self.alive_seconds / 3):
                break

    def _observe(self, outcome: JobOutcome) -> None:
        if outcome.outcome == "learned":
            self.learned += 1
            self._retrain_due.set()  # new pairs may have crossed the retraining threshold
        self.metrics.observe_learning(outcome.seconds, outcome.outcome, outcome.result)
