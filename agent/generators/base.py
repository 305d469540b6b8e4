"""The generator protocol: many chat prompts in, n sampled texts per prompt out, in one call."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Protocol, Sequence, runtime_checkable

__all__ = ["Message", "ChatPrompt", "GenerationParams", "Generation", "Generator", "PRIORITIES", "RequestsFirst",
           "stream_generation"]
PRIORITIES = ("request", "background")

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}
ChatPrompt = list  # list[Message]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling options for one batched call; validated on construction.

    ``temperature=0`` means greedy decoding (then ``n`` > 1 repeats the same text on most back-ends).
    ``priority="background"`` (learning's inference) waits while the generator serves requests, for at most the
    back-end's cap, so requests go first and background work still progresses; it never changes the output (and
    so is not part of ``cache_key``).
    """

    n: int = 1
    temperature: float = 0.7
    max_tokens: int = 192
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_p: float = 0.95
    priority: str = "request"

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 1 or self.n > 64:
            raise ValueError(f"n must be an integer in [1, 64], got {self.n!r}")
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature!r}")
        if not isinstance(self.max_tokens, int) or not 1 <= self.max_tokens <= 8192:
            raise ValueError(f"max_tokens must be an integer in [1, 8192], got {self.max_tokens!r}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, got {self.priority!r}")
        object.__setattr__(self, "stop", tuple(self.stop))

    def cache_key(self) -> tuple:
        return (self.n, float(self.temperature), self.max_tokens, self.stop, self.seed, float(self.top_p))


@dataclass
class Generation:
    """What one prompt produced: ``n`` texts and the tokens it cost."""

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    """Anything that turns chat prompts into texts. ``model_name`` names what answered.

    A back-end that can show text as it decodes also has ``stream(prompt, params)``: an iterator of text deltas
    (str) ending with the one ``Generation`` (``n`` = 1); closing it early stops the decoding. ``stream_generation``
    gives every back-end that shape.
    """

    model_name: str

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        """One Generation per prompt, in order; raises ``GeneratorUnavailable`` when down."""
        ...


def apply_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the first stop string (back-ends that cannot stop natively use this)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def stream_generation(generator: Generator, prompt: ChatPrompt, params: GenerationParams
                      ) -> Iterator[str | Generation]:
    """Text deltas of one completion as they decode, then its ``Generation``: the back-end's own ``stream`` where it
    has one, else the whole text as one delta once ``generate`` returns."""
    stream = getattr(generator, "stream", None)
    if stream is not None:
        yield from stream(prompt, params)
        return
    generation = generator.generate([prompt], params)[0]
    if generation.texts[0]:
        yield generation.texts[0]
    yield generation


class RequestsFirst:
    """The lock of an in-process back-end that decodes one call at a time, with requests before background work:
    a background caller waits while a request runs or waits, for at most ``max_wait`` seconds (then it takes its
    turn like a request, so learning never starves under a steady request load).

    >>> lock = RequestsFirst(max_wait=5.0)
    >>> with lock("background"):
    ...     pass
    """

    def __init__(self, max_wait: float = 30.0):
        self.max_wait = max_wait
        self._cond = threading.Condition()
        self._busy = False
        self._requests_waiting = 0

    @contextmanager
    def __call__(self, priority: str = "request"):
        with self._cond:
            if priority == "background":
                deadline = time.monotonic() + self.max_wait
                while (self._busy or self._requests_waiting) and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                while self._busy:
                    self._cond.wait()
            else:
                self._requests_waiting += 1
                try:
                    while self._busy:
                        self._cond.wait()
                finally:
                    self._requests_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
