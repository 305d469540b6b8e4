"""Whether the generator answers, as every process's calls see it: ``WatchedGenerator`` wraps the generator and
records each success and failure in the store's ``health`` table (throttled), so any process's ``/ready`` says the
generator is down while calls to it fail, even when its server still answers ``/models``; and the learner knows when
the jobs the generator failed can run again."""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterator, Sequence

from redline.store import Health

from .errors import GeneratorUnavailable
from .generators import ChatPrompt, Generation, GenerationParams, Generator

__all__ = ["WatchedGenerator", "generator_failed", "FAILURE_MEMORY_SECONDS", "GENERATOR"]
log = logging.getLogger(__name__)
GENERATOR = "generator"  # its row in the health table
# A failure this recent, and newer than the last success, means the generator is down.
FAILURE_MEMORY_SECONDS = 60.0
# One process writes the same state (ok, failed) at most this often; a change of state is written at once.
WRITE_EVERY_SECONDS = 5.0
_MARK = "_redline_generator_failed"


def generator_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is the generator's failure (it was down, unreachable, or answered what the client could not
    use), not the caller's own (nor a request the generator answered and refused: the same request would be
    refused again)."""
    if isinstance(exc, GeneratorUnavailable):
        return exc.retryable
    return bool(getattr(exc, _MARK, False))


def _counts(exc: BaseException) -> bool:
    """A failure that says the generator is not working: not a request it answered and refused (a 4xx)."""
    return not (isinstance(exc, GeneratorUnavailable) and not exc.retryable)


class WatchedGenerator:
    """The generator ``inner``, its calls recorded in ``health`` (as ``GENERATOR``). Everything else (``model_name``,
    ``base_url``, ``load``, ``close``, a test double's switches) is the inner generator's.

    ``last_ok`` / ``last_failure``: ``time.monotonic()`` of this process's last success and failure (0: none).
    """

    def __init__(self, inner: Generator, health: Health, *, write_every: float = WRITE_EVERY_SECONDS):
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "_health", health)
        object.__setattr__(self, "_write_every", write_every)
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_written", (None, 0.0))  # (state written last, when)
        object.__setattr__(self, "last_ok", 0.0)
        object.__setattr__(self, "last_failure", 0.0)

    def __getattr__(self, name: str):
        if name == "stream":
            stream = getattr(self.inner, "stream")  # AttributeError when the back-end has none
            return lambda prompt, params: self._watch_stream(stream(prompt, params))
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self.inner, name, value)

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        try:
            out = self.inner.generate(prompts, params)
        except Exception as exc:
            self._failed(exc)
            raise
        self._ok()
        return out

    def _watch_stream(self, events: Iterator) -> Iterator:
        answered = False
        try:
            for event in events:
                if not answered:
                    answered = True
                    self._ok()
                yield event
        except Exception as exc:
            self._failed(exc)
            raise
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def probe(self) -> bool:
        """One tiny call (one token) to see whether the generator answers now; recorded like any call."""
        try:
            self.generate([[{"role": "user", "content": "Say OK."}]],
                          GenerationParams(max_tokens=1, temperature=0.0, priority="background"))
        except Exception as exc:
            log.info("generator probe failed: %s", exc)
            return False
        return True

    def _ok(self) -> None:
        object.__setattr__(self, "last_ok", time.monotonic())
        self._write("ok", lambda: self._health.ok(GENERATOR))

    def _failed(self, exc: BaseException) -> None:
        if not _counts(exc):
            return
        try:
            setattr(exc, _MARK, True)
        except AttributeError:  # an exception without a __dict__: generator_failed cannot tell it
            pass
        object.__setattr__(self, "last_failure", time.monotonic())
        self._write("failed", lambda: self._health.failed(GENERATOR, f"{type(exc).__name__}: {exc}"))

    def _write(self, state: str, write) -> None:
        now = time.monotonic()
        with self._lock:
            last, at = self._written
            if last == state and now - at < self._write_every:
                return
            object.__setattr__(self, "_written", (state, now))
        try:
            write()
        except Exception:  # health is a report: a store that cannot take it must not fail the call
            log.warning("could not record the generator's health", exc_info=True)
