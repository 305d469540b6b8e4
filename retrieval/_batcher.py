"""One thread runs the embedding model for every caller: requests that wait together are encoded in one call
(micro-batching, as vLLM batches generation)."""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

__all__ = ["MicroBatcher"]


@dataclass
class _Work:
    texts: list[str]
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """``submit(texts)`` blocks until ``run(texts)`` has embedded them on the batcher thread.

    Requests waiting together go into one ``run`` call of up to ``max_batch`` texts (a request larger than that
    goes alone), in the order they came.
    """

    def __init__(self, run: Callable[[list[str]], np.ndarray], *, max_batch: int = 64,
                 name: str = "redline-embedder"):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.run, self.max_batch = run, max_batch
        self.name = name
        self._requests: deque[_Work] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self.batches = 0  # run() calls made, for tests and metrics
        self.batched_requests = 0  # requests served by those calls

    def submit(self, texts: Sequence[str]) -> np.ndarray:
        work = _Work(list(texts))
        with self._wake:
            self._start()
            self._requests.append(work)
            self._wake.notify()
        return work.future.result()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def _batches(self):
        """Yields the next batch for ever: the waiting requests, up to ``max_batch`` texts."""
        while True:
            with self._wake:
                while not self._requests:
                    self._wake.wait()
                batch, size = [], 0
                while self._requests and (not batch or size + len(self._requests[0].texts) <= self.max_batch):
                    batch.append(self._requests.popleft())
                    size += len(batch[-1].texts)
            yield batch  # outside the lock: callers keep queueing while the model runs

    def _loop(self) -> None:
        for batch in self._batches():
            texts = [t for work in batch for t in work.texts]
            try:
                vectors = self.run(texts)
            except BaseException as exc:  # every waiter gets the failure (e.g. the model cannot load)
                for work in batch:
                    work.future.set_exception(exc)
                continue
            self.batches += 1
            self.batched_requests += len(batch)
            start = 0
            for work in batch:
                work.future.set_result(vectors[start:start + len(work.texts)])
                start += len(work.texts)
