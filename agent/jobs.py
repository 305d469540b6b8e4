"""Running the learning jobs the store queues: one runner with one failure rule, for the server's worker and
``Agent.process_pending`` (``redline learn-pending``) alike.

Per job: learned (or learned before) → done; the generator is down → back to pending, and draining stops
(retry after a back-off); an agent or store error (the user was deleted meanwhile, ...) → failed, draining goes
on; anything else → back to pending and draining stops, or failed once it has had ``max_attempts`` attempts.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager

from redline.store import Jobs, StoreError

from .errors import AgentError, GeneratorUnavailable
from .types import LearnResult

__all__ = ["JobRunner", "JobOutcome", "MAX_ATTEMPTS"]
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


class JobRunner:
    """``run(job)`` one job, or ``drain()`` the queue oldest first; ``learn`` is ``Agent.process_edit``.

    ``context(job)`` wraps each job (e.g. to stamp its log lines); ``on_outcome(outcome)`` sees each result.
    """

    def __init__(self, jobs: Jobs, learn: Callable[[str], LearnResult], *, max_attempts: int = MAX_ATTEMPTS,
                 context: Callable[[dict], ContextManager] | None = None,
                 on_outcome: Callable[[JobOutcome], None] | None = None):
        self.jobs, self.learn, self.max_attempts = jobs, learn, max_attempts
        self.context = context or (lambda job: nullcontext())
        self.on_outcome = on_outcome

    def run(self, job: dict) -> JobOutcome:
        with self.context(job):
            start = time.perf_counter()
            outcome = self._run(job, start)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome

    def _run(self, job: dict, start: float) -> JobOutcome:
        def done(outcome: str, requeued: bool, **more) -> JobOutcome:
            return JobOutcome(job["id"], job["interaction_id"], outcome, requeued, time.perf_counter() - start, **more)

        try:
            self.jobs.mark(job["id"], "running")
            result = self.learn(job["interaction_id"])
            if result.already_learned:  # the learning step marks its job done; this covers an older crash
                self.jobs.mark(job["id"], "done")
            return done("learned", False, result=result)
        except GeneratorUnavailable as exc:
            log.warning("generator unavailable; learning of %s is retried later: %s", job["interaction_id"], exc)
            self.jobs.mark(job["id"], "pending", error=str(exc))
            return done("retry", True, error=exc)
        except (AgentError, StoreError) as exc:  # e.g. the user was deleted meanwhile
            log.info("learning job %s dropped: %s", job["id"], exc)
            self.jobs.mark(job["id"], "failed", error=str(exc))
            return done("dropped", False, error=exc)
        except Exception as exc:
            log.exception("learning job %s failed", job["id"])
            requeue = (job.get("attempts") or 0) + 1 < self.max_attempts
            self.jobs.mark(job["id"], "pending" if requeue else "failed", error=repr(exc))
            return done("error", requeue, error=exc)

    def drain(self, *, limit: int | None = None, stopping: Callable[[], bool] = lambda: False,
              batch: int = 50) -> list[JobOutcome]:
        """Run queued jobs, oldest first, until none is left, ``limit`` ran, ``stopping()`` says so, or a job
        was requeued (then it is the last outcome: back off before draining again)."""
        outcomes: list[JobOutcome] = []
        while not stopping() and (limit is None or len(outcomes) < limit):
            jobs = self.jobs.pending(limit=batch if limit is None else min(batch, limit - len(outcomes)))
            if not jobs:
                break
            for job in jobs:
                if stopping():
                    return outcomes
                outcomes.append(self.run(job))
                if outcomes[-1].requeued:
                    return outcomes
        return outcomes
