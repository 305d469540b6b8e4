"""How hard a run kept the generator busy: fresh tokens (no cache hits), calls, and how many were in flight.

``GeneratorMeter`` wraps the back-end (below the cache, so only generated tokens count) and times every call that
answered. Its ``summary()`` is the report's generator line: aggregate completion tokens per second of the run,
the rate of one call, and the mean number of calls in flight (about how many streams the generator served at once).
"""

from __future__ import annotations

import threading
import time
from typing import Sequence

from redline.agent.generators import ChatPrompt, Generation, GenerationParams, Generator

__all__ = ["GeneratorMeter"]


class GeneratorMeter:
    def __init__(self, inner: Generator, clock=time.monotonic):
        self.inner = inner
        self._clock = clock
        self._lock = threading.Lock()
        self.calls = self.prompts = self.prompt_tokens = self.completion_tokens = 0
        self.call_seconds = 0.0
        self.first: float | None = None
        self.last: float | None = None

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        start = self._clock()
        out = self.inner.generate(prompts, params)
        end = self._clock()
        with self._lock:
            self.calls += 1
            self.prompts += len(prompts)
            self.prompt_tokens += sum(g.prompt_tokens for g in out)
            self.completion_tokens += sum(g.completion_tokens for g in out)
            self.call_seconds += end - start
            self.first = start if self.first is None else min(self.first, start)
            self.last = end if self.last is None else max(self.last, end)
        return out

    def summary(self) -> dict:
        """``calls``, ``prompts``, token counts, ``seconds`` from the first call's start to the last one's end,
        ``tokens_per_second`` (completion tokens over those seconds), ``tokens_per_call_second`` (over the calls'
        own durations: what one call decodes per second) and ``in_flight`` (the calls' durations over the seconds:
        mean calls at once)."""
        with self._lock:
            span = (self.last - self.first) if self.first is not None else 0.0
            return {"calls": self.calls, "prompts": self.prompts, "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens, "seconds": round(span, 2),
                    "tokens_per_second": round(self.completion_tokens / span, 2) if span > 0 else None,
                    "tokens_per_call_second": (round(self.completion_tokens / self.call_seconds, 2)
                                               if self.call_seconds > 0 else None),
                    "in_flight": round(self.call_seconds / span, 2) if span > 0 else None}
