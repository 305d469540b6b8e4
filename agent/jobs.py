"""Running the learning jobs the store queues: one runner with one failure rule, for the learner process and
``Agent.process_pending`` (``redline learn-pending``) alike.

Jobs are claimed (``Jobs.claim``: atomically, for one owner, with a lease the runner renews while it works), so
several runners on one store never run the same job. Per job: learned (or learned before) → done; the generator is
down → back to pending, and draining stops (retry after a back-off); an agent or store error (the user was deleted
meanwhile, ...) → failed, draining goes on; anything else → back to pending and draining stops, or failed once it
has had ``max_attempts`` attempts (each claim counts one).

Jobs run in batches (``Agent.process_edits``: one generator call and one transaction for the batch); when a batch
fails unexpectedly its jobs, still claimed, run one at a time, so the rule above applies to each job.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator, Sequence

from redline.store import Jobs, StoreError

from .errors import AgentError, GeneratorUnavailable
from .types import LearnResult

__all__ = ["JobRunner", "JobOutcome", "MAX_ATTEMPTS", "renewing"]
log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class JobOutcome:
    """What running one job did. ``outcome``: learned, retry (generator down), dropped (failed for good on an
    agent or store error) or error (unexpected); ``requeued``: the job waits in the queue for another attempt."""

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
                 max_attempts: int = MAX_ATTEMPTS, learn_many: Callable[[list[str]], list] | None = None,
                 context: Callable[[dict], ContextManager] | None = None,
                 on_outcome: Callable[[JobOutcome], None] | None = None):
        self.jobs, self.learn, self.learn_many, self.max_attempts = jobs, learn, learn_many, max_attempts
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
                self.jobs.mark(ids, "pending", owner=self.owner, error=str(exc))
                seconds = (time.perf_counter() - start) / len(jobs)
                outcomes = [JobOutcome(job["id"], job["interaction_id"], "retry", True, seconds, error=exc)
                            for job in jobs]
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
                log.info("learning job %s dropped: %s", job["id"], result)
                self.jobs.mark(job["id"], "failed", owner=self.owner, error=str(result))
                outcomes.append(JobOutcome(job["id"], job["interaction_id"], "dropped", False, seconds, error=result))
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
        def done(outcome: str, requeued: bool, **more) -> JobOutcome:
            return JobOutcome(job["id"], job["interaction_id"], outcome, requeued, time.perf_counter() - start, **more)

        try:
            result = self.learn(job["interaction_id"])
            if result.already_learned:  # the learning step marks its job done; this covers an older crash
                self.jobs.mark(job["id"], "done", owner=self.owner)
            return done("learned", False, result=result)
        except GeneratorUnavailable as exc:
            log.warning("generator unavailable; learning of %s is retried later: %s", job["interaction_id"], exc)
            self.jobs.mark(job["id"], "pending", owner=self.owner, error=str(exc))
            return done("retry", True, error=exc)
        except (AgentError, StoreError) as exc:  # e.g. the user was deleted meanwhile
            log.info("learning job %s dropped: %s", job["id"], exc)
            self.jobs.mark(job["id"], "failed", owner=self.owner, error=str(exc))
            return done("dropped", False, error=exc)
        except Exception as exc:
            log.exception("learning job %s failed", job["id"])
            requeue = (job.get("attempts") or 0) < self.max_attempts  # the claim counted this attempt
            self.jobs.mark(job["id"], "pending" if requeue else "failed", owner=self.owner, error=repr(exc))
            return done("error", requeue, error=exc)

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
