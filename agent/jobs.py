"""Running the learning jobs the store queues: one runner with one failure rule, for the learner process and
``Agent.process_pending`` (``redline learn-pending``) alike.

Jobs are claimed (``Jobs.claim``: atomically, for one owner, with a lease the runner renews while it works), so
several runners on one store never run the same job. Per job: learned (or learned before) → done; its interaction
was deleted → dropped (logged), draining goes on; any other failure → back to pending, not claimable before a
back-off (``Backoff``: 30 s, then fourfold each attempt up to hours), and draining stops; after ``max_attempts``
attempts (each claim counts one) → parked, kept with its error and ``error_kind`` ('generator': the generator failed
or was unreachable; 'error': anything else) until it is retried (``Jobs.retry``: when the generator answers again,
or on command). An accepted edit is never failed for good.

Jobs run in batches (``Agent.process_edits``: one generator call and one transaction for the batch, that transaction
made again when it lost a race to a concurrent one); when a batch fails otherwise its jobs, still claimed, run one at
a time, so the rule above applies to each job.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, ContextManager, Iterator, Sequence

from redline.store import Jobs, StoreError

from .errors import AgentError, GeneratorUnavailable, UnknownInteraction
from .health import generator_failed
from .types import LearnResult

__all__ = ["JobRunner", "JobOutcome", "Backoff", "MAX_ATTEMPTS", "renewing"]
log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


class Backoff:
    """How long a failed job waits before its next attempt: ``first`` seconds after the first attempt, ``factor``
    times longer after each further one, at most ``cap``, each spread by ±``jitter`` (a share) so jobs that failed
    together do not come back together. ``clock`` (seconds since the epoch) and ``rng`` are injectable for tests.

    >>> b = Backoff(jitter=0.0)
    >>> [b.delay(n) for n in (1, 2, 3)], b.delay(20)
    ([30.0, 120.0, 480.0], 21600.0)
    """

    def __init__(self, *, first: float = 30.0, factor: float = 4.0, cap: float = 21600.0, jitter: float = 0.2,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None):
        self.first, self.factor, self.cap, self.jitter = first, factor, cap, jitter
        self.clock, self.rng = clock, rng or random.Random()

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1 for the first)."""
        base = min(self.cap, self.first * self.factor ** max(0, min(attempts, 64) - 1))
        return min(self.cap, base * (1.0 + self.rng.uniform(-self.jitter, self.jitter)))

    def until(self, attempts: int) -> str:
        """When the next attempt may run, as the store's timestamps read (UTC, ISO 8601)."""
        moment = datetime.fromtimestamp(self.clock() + self.delay(attempts), timezone.utc)
        return moment.isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class JobOutcome:
    """What running one job did. ``outcome``: learned; retry (the generator failed) or error (anything else): the
    job waits out a back-off; parked (it failed its last attempt); dropped (its interaction was deleted).
    ``requeued``: the job failed and waits for another attempt (retry, error, parked): draining stops there."""

    job_id: int
    interaction_id: str
    outcome: str
    requeued: bool
    seconds: float
    result: LearnResult | None = None
    error: BaseException | None = None


@contextmanager
def renewing(renew: Callable[[], object], every: float) -> Iterator[None]:
    """Call ``renew()`` every ``every`` seconds on a thread of its own while the block runs (a lease kept alive
    while its holder works; a failed renewal is logged and tried again next time)."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every):
            try:
                renew()
            except Exception:
                log.warning("renewing a lease failed; trying again in %.0f s", every, exc_info=True)

    thread = threading.Thread(target=loop, name="redline-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(1.0)


class JobRunner:
    """``run_batch(jobs)`` claimed jobs, or ``drain()`` the queue oldest first, claiming as ``owner``; ``learn`` is
    ``Agent.process_edit`` and ``learn_many`` ``Agent.process_edits`` (a result or an error per id).

    ``context(job)`` wraps each job or batch (e.g. to stamp its log lines; a batch is ``{"id": "FIRST-LAST"}``);
    ``on_outcome(outcome)`` sees each result.
    """

    def __init__(self, jobs: Jobs, learn: Callable[[str], LearnResult], *, owner: str, lease_seconds: float = 60.0,
                 max_attempts: int = MAX_ATTEMPTS, backoff: Backoff | None = None,
                 learn_many: Callable[[list[str]], list] | None = None,
                 context: Callable[[dict], ContextManager] | None = None,
                 on_outcome: Callable[[JobOutcome], None] | None = None):
        self.jobs, self.learn, self.learn_many, self.max_attempts = jobs, learn, learn_many, max_attempts
        self.backoff = backoff or Backoff()
        self.owner, self.lease_seconds = owner, lease_seconds
        self.context = context or (lambda job: nullcontext())
        self.on_outcome = on_outcome

    def run(self, job: dict) -> JobOutcome:
        """Run one claimed job."""
        with self.context(job):
            start = time.perf_counter()
            outcome = self._run(job, start)
        self._report(outcome)
        return outcome

    def _report(self, outcome: JobOutcome) -> None:
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def run_batch(self, jobs: Sequence[dict]) -> list[JobOutcome]:
        """Run claimed ``jobs`` as one learning step; stops early, like ``drain``, when a job must wait (the jobs
        not run then go back to the queue untried)."""
        if self.learn_many is None or len(jobs) == 1:
            return self._one_by_one(jobs)
        ids = [job["id"] for job in jobs]
        with self.context({"id": f"{ids[0]}-{ids[-1]}"}):
            start = time.perf_counter()
            try:
                results = self.learn_many([job["interaction_id"] for job in jobs])
            except GeneratorUnavailable as exc:
                log.warning("generator unavailable; learning of %d edits is retried later: %s", len(jobs), exc)
                seconds = (time.perf_counter() - start) / len(jobs)
                outcomes = [self._failed(job, exc, seconds) for job in jobs]
            except Exception:  # find the job that fails: each runs alone (still claimed), under the one rule
                log.warning("a batch of %d learning jobs failed; running them one at a time", len(jobs), exc_info=True)
                outcomes = None
            else:
                outcomes = self._batch_outcomes(jobs, results, (time.perf_counter() - start) / len(jobs))
        if outcomes is None:
            return self._one_by_one(jobs)
        for outcome in outcomes:
            self._report(outcome)
        return outcomes

    def _batch_outcomes(self, jobs: Sequence[dict], results: list, seconds: float) -> list[JobOutcome]:
        outcomes = []
        for job, result in zip(jobs, results):
            if isinstance(result, BaseException):  # an agent or store error: e.g. the user was deleted meanwhile
                outcomes.append(self._dropped(job, result, seconds) if isinstance(result, UnknownInteraction)
                                else self._failed(job, result, seconds))
                continue
            if result.already_learned:  # the learning step marks its job done; this covers an older crash
                self.jobs.mark(job["id"], "done", owner=self.owner)
            outcomes.append(JobOutcome(job["id"], job["interaction_id"], "learned", False, seconds, result=result))
        return outcomes

    def _one_by_one(self, jobs: Sequence[dict]) -> list[JobOutcome]:
        outcomes = []
        for i, job in enumerate(jobs):
            outcomes.append(self.run(job))
            if outcomes[-1].requeued:
                self.jobs.release([j["id"] for j in jobs[i + 1:]], owner=self.owner)
                break
        return outcomes

    def _run(self, job: dict, start: float) -> JobOutcome:
        try:
            result = self.learn(job["interaction_id"])
        except UnknownInteraction as exc:  # deleted meanwhile (with its user, or its edit)
            return self._dropped(job, exc, time.perf_counter() - start)
        except Exception as exc:
            if not isinstance(exc, (AgentError, StoreError)):
                log.exception("learning job %s failed", job["id"])
            return self._failed(job, exc, time.perf_counter() - start)
        if result.already_learned:  # the learning step marks its job done; this covers an older crash
            self.jobs.mark(job["id"], "done", owner=self.owner)
        return JobOutcome(job["id"], job["interaction_id"], "learned", False, time.perf_counter() - start,
                          result=result)

    def _dropped(self, job: dict, exc: BaseException, seconds: float) -> JobOutcome:
        """The job's interaction is gone: there is nothing left to learn from, ever."""
        log.warning("learning job %s dropped: its interaction %s was deleted (%s)", job["id"], job["interaction_id"],
                    exc)
        self.jobs.mark(job["id"], "dropped", owner=self.owner, error=str(exc), error_kind="deleted")
        return JobOutcome(job["id"], job["interaction_id"], "dropped", False, seconds, error=exc)

    def _failed(self, job: dict, exc: BaseException, seconds: float) -> JobOutcome:
        """The attempt failed: back off before the next, or park the job after its last."""
        kind = "generator" if generator_failed(exc) else "error"
        attempts = job.get("attempts") or 0  # the claim counted this attempt
        error = str(exc) if isinstance(exc, (AgentError, StoreError)) else f"{type(exc).__name__}: {exc}"
        if attempts >= self.max_attempts:
            log.warning("learning job %s parked after %d attempts (%s): %s; it is retried %s", job["id"], attempts,
                        kind, error, "when the generator answers again or on command" if kind == "generator"
                        else "on command (redline learn-pending --failed, POST /v1/learning/retry)")
            self.jobs.mark(job["id"], "parked", owner=self.owner, error=error, error_kind=kind)
            return JobOutcome(job["id"], job["interaction_id"], "parked", True, seconds, error=exc)
        retry_at = self.backoff.until(attempts)
        log.warning("learning job %s failed (attempt %d of %d, %s): %s; next attempt at %s", job["id"], attempts,
                    self.max_attempts, kind, error, retry_at)
        self.jobs.mark(job["id"], "pending", owner=self.owner, error=error, error_kind=kind, run_after=retry_at)
        return JobOutcome(job["id"], job["interaction_id"], "retry" if kind == "generator" else "error", True, seconds,
                          error=exc)

    def drain(self, *, limit: int | None = None, stopping: Callable[[], bool] = lambda: False,
              batch: int = 32, batch_seconds: float = 1.0) -> list[JobOutcome]:
        """Claim and run queued jobs, oldest first, until none is claimable, ``limit`` ran, ``stopping()`` says so
        (checked between batches: the jobs not claimed stay queued), or a job was requeued (then it is the last
        outcome: back off before draining again). The leases of the jobs held are renewed meanwhile.

        Batches start at one job and double up to ``batch`` while one takes under ``batch_seconds``: fast steps
        share a generator call and a transaction, slow ones (a generator on the CPU) run alone, so a stop never
        waits long."""
        outcomes: list[JobOutcome] = []
        size = 1
        with renewing(lambda: self.jobs.renew(self.owner, lease_seconds=self.lease_seconds), self.lease_seconds / 3):
            while not stopping() and (limit is None or len(outcomes) < limit):
                jobs = self.jobs.claim(self.owner, limit=size if limit is None else min(size, limit - len(outcomes)),
                                       lease_seconds=self.lease_seconds)
                if not jobs:
                    break
                start = time.perf_counter()
                outcomes.extend(self.run_batch(jobs))
                if outcomes[-1].requeued:
                    break
                per_job = (time.perf_counter() - start) / len(jobs)
                size = max(1, min(batch, 2 * size, int(batch_seconds / per_job) if per_job > 0 else batch))
        return outcomes
