"""One learner process: ``run_learner(settings)`` until SIGTERM or SIGINT (``redline worker``, and the learner child
of ``redline serve``)."""

from __future__ import annotations

import logging
import os
import signal
import threading

from redline.agent import Agent, Settings

from .metrics import LearnerMetrics
from .worker import LearningWorker

__all__ = ["learner_agent", "run_learner"]
log = logging.getLogger(__name__)


def learner_agent(settings: Settings, *, owner: str | None = None) -> Agent:
    """The Agent a learner runs on: everything it builds for background work is built here (its generator is this
    process's own: with the in-process back-ends, a copy of the model beside the API processes' copies; with a
    generator server, the llama-server ``redline serve`` starts or the one ``REDLINE_GENERATOR_URL`` names, a client
    of the same server as theirs, whose requests go first)."""
    return Agent(settings, owner=owner)


def run_learner(settings: Settings, *, owner: str | None = None, stop_timeout: float = 60.0) -> int:
    """Learn queued edits and retrain the shared reward until SIGTERM or SIGINT, then stop cleanly: the batch in
    progress finishes and is committed, the jobs not started stay queued, the store is closed. The process runs at
    niceness ``settings.learner_nice`` (the API processes beside it get the CPU first). ``owner``: the name
    this learner claims jobs under (a supervisor passes the same one to a learner it restarts, which then takes the
    jobs its predecessor held back at once). Returns the exit status (0)."""
    if settings.learner_nice:  # requests before background work: the kernel runs the API processes first
        os.nice(settings.learner_nice)
    agent = learner_agent(settings, owner=owner)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker = LearningWorker(agent, LearnerMetrics(), retry_after=settings.retry_after_seconds,
                            maintenance_interval=settings.maintenance_interval,
                            probe_interval=settings.learn_retry_seconds).start()
    log.info("learner %s started on %s", agent.owner, agent.store.path)
    try:
        while not stop.wait(1.0):
            if not worker.alive:
                log.error("learner %s: a worker thread died; stopping", agent.owner)
                break
    finally:
        finished = worker.stop(timeout=stop_timeout)
        if finished:
            agent.release_claims()  # nothing is in progress: any claim left is handed back at once
        log.info("learner %s stopped (%d learned, %d retrains)%s", agent.owner, worker.learned, worker.retrains,
                 "" if finished else "; its batch was still running, its jobs go back when their lease ends")
        agent.close()
    return 0
