"""A Generator wrapper for the harness.

``BatchingGenerator`` merges concurrent calls from the harness's worker threads into one batched call: each
simulated user runs in its own thread; while one waits for its draft, the others' prompts with the same
sampling parameters join the same ``inner.generate`` call, so a batching back-end (transformers with
padding, vLLM) serves several users per forward pass.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Sequence

from redline.agent.generators import ChatPrompt, Generation, GenerationParams, Generator

__all__ = ["BatchingGenerator"]


class BatchingGenerator:
    def __init__(self, inner: Generator, *, window: float = 0.05, max_prompts: int = 16):
        self.inner = inner
        self.model_name = inner.model_name
        self.window = window
        self.max_prompts = max_prompts
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="batching-generator", daemon=True)
        self._thread.start()
        self.calls = 0

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        fut: Future = Future()
        self._queue.put((list(prompts), params, fut))
        return fut.result()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            try:
                while True:
                    batch.append(self._queue.get(timeout=self.window))
            except queue.Empty:
                pass
            groups: dict[tuple, list] = {}
            for item in batch:
                groups.setdefault((item[1].cache_key(), item[1].priority), []).append(item)
            for items in groups.values():
                for start in range(0, len(items), self.max_prompts):
                    self._run(items[start:start + self.max_prompts])

    def _run(self, items: list) -> None:
        prompts = [p for ps, _, _ in items for p in ps]
        try:
            self.calls += 1
            out = self.inner.generate(prompts, items[0][1])
        except BaseException as exc:  # hand the failure to every waiting caller
            for _, _, fut in items:
                fut.set_exception(exc)
            return
        i = 0
        for ps, _, fut in items:
            fut.set_result(out[i:i + len(ps)])
            i += len(ps)
