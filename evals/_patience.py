"""A Generator wrapper for long evaluation runs: a generator server that is slow or restarting is waited for.

An evaluation run sends thousands of requests to one generator server, often shared with other runs; a single
time-out or refused connection must not end it. ``PatientGenerator`` retries a call that failed with a retryable
``GeneratorUnavailable`` (time-out, refused connection, 5xx) with exponential back-off: for as long as the server
answers (the back-end's ``alive()``: it is busy, not gone) without limit, and while it does not answer at all for
at most ``down_wait`` seconds (a restart), after which ``GeneratorGone`` ends the run with a message that says so. A
refusal (4xx) and a back-end that cannot tell whether it is alive (in process: a failure there is no outage) are
raised at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Sequence

from redline.agent import GeneratorUnavailable
from redline.agent.generators import ChatPrompt, Generation, GenerationParams, Generator

__all__ = ["PatientGenerator", "GeneratorGone"]
log = logging.getLogger(__name__)


class GeneratorGone(GeneratorUnavailable):
    """The generator server did not answer for longer than the run waits for one."""


class PatientGenerator:
    """``inner`` with its outages waited out (see the module docstring); ``alive()`` says whether the server
    answers (None: no server to ask, every failure is raised). ``notify(message)`` hears about each change between
    answering, busy and down (e.g. a progress bar's ``write``); ``sleep`` and ``clock`` are for tests."""

    def __init__(self, inner: Generator, alive: Callable[[], bool] | None, *, down_wait: float = 600.0,
                 first_wait: float = 1.0,
                 max_wait: float = 30.0, notify: Callable[[str], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.inner, self.alive = inner, alive
        self.down_wait, self.first_wait, self.max_wait = down_wait, first_wait, max_wait
        self.notify = notify or log.warning
        self._sleep, self._clock = sleep, clock
        self._lock = threading.Lock()
        self._state = "answering"
        self._down_since: float | None = None  # shared by every caller: the server's outage, not one call's
        self.retries = 0

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        wait = self.first_wait
        while True:
            try:
                out = self.inner.generate(prompts, params)
            except GeneratorUnavailable as exc:
                if not exc.retryable or self.alive is None:
                    raise
                self._failed(exc, self.alive())
                self._sleep(wait)
                wait = min(2 * wait, self.max_wait)
                continue
            self._answered()
            return out

    def _failed(self, exc: GeneratorUnavailable, alive: bool) -> None:
        """Count the failure; raise ``GeneratorGone`` when the server has not answered for ``down_wait``."""
        now = self._clock()
        with self._lock:
            self.retries += 1
            if alive:
                self._down_since = None
                self._change("busy", f"generator busy ({exc}); waiting and retrying while it answers")
                return
            if self._down_since is None:
                self._down_since = now
            down = now - self._down_since
            self._change("down", f"generator not answering ({exc}); waiting up to {self.down_wait:.0f} s for it")
        if down >= self.down_wait:
            raise GeneratorGone(f"the generator did not answer for {down:.0f} s (waited up to {self.down_wait:.0f} s; "
                                f"last error: {exc})") from exc

    def _answered(self) -> None:
        if self._state != "answering":
            with self._lock:
                self._down_since = None
                self._change("answering", "generator answering again; the run continues")

    def _change(self, state: str, message: str) -> None:
        if state != self._state:
            self._state = state
            self.notify(message)
