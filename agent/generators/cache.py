"""A Generator that remembers: outputs cached in SQLite by (model, prompt, sampling parameters incl. seed).

Wrap any back-end to make reruns of the same requests free (the evaluation harness does):

    gen = CachingGenerator(TransformersGenerator(path), "results/cache.sqlite")

Only requests whose parameters fully determine the output are worth caching: greedy decoding, or
sampling with a fixed ``seed``. Unseeded sampling is passed through uncached, since a cached answer
would hide the randomness the caller asked for. Token counts of the original call are returned on a hit,
so accounting of the generator's expense does not change with the cache; ``extra["cached"]`` says which.

A prompt already on its way to the back-end for another caller is not sent again: the second caller waits for the
first one's answer (an evaluation's streams ask the same greedy draft at the same moment: every learning method
before its first preference, redline with and without rules until a rule fires).

Processes may share one file (an evaluation run one process per method, ``redline eval --cache``): the first answer
stored for a prompt is the answer, and a process that generated the same prompt meanwhile returns the stored one, so
every method gets the same text for the same prompt. A batched CPU back-end does not: the same greedy prompt decoded
in a different batch differs often enough to decide a round (of the prompts two separate 40-round runs of held-out
summaries both sent, 15 of 52 and 14 of 67 came back different).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Sequence

from .base import ChatPrompt, Generation, GenerationParams, Generator

__all__ = ["CachingGenerator"]


class CachingGenerator:
    """``generate`` answers cached prompts from SQLite and sends only the misses, in one call, to ``inner``."""

    def __init__(self, inner: Generator, path: str | Path = ":memory:"):
        self.inner = inner
        self.model_name = inner.model_name
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=60000")  # other processes may share the file
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, texts TEXT NOT NULL,"
                         " prompt_tokens INTEGER, completion_tokens INTEGER)")
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future] = {}
        self.hits = 0
        self.misses = 0

    def key(self, prompt: ChatPrompt, params: GenerationParams) -> str:
        payload = json.dumps([self.model_name, prompt, list(params.cache_key())], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        if params.temperature > 0 and params.seed is None:
            return self.inner.generate(prompts, params)
        keys = [self.key(p, params) for p in prompts]
        out: list[Generation | None] = [None] * len(prompts)
        with self._lock:
            for i, key in enumerate(keys):
                row = self._db.execute("SELECT texts, prompt_tokens, completion_tokens FROM generations"
                                       " WHERE key = ?", (key,)).fetchone()
                if row:
                    out[i] = Generation(json.loads(row[0]), row[1], row[2], {"cached": True})
            missing: list[int] = []  # this call sends these
            shared: list[tuple[int, Future]] = []  # another call (or an earlier copy in this one) sends these
            mine: dict[str, Future] = {}
            for i, key in enumerate(keys):
                if out[i] is not None:
                    continue
                if key in self._in_flight:
                    shared.append((i, self._in_flight[key]))
                else:
                    self._in_flight[key] = mine[key] = Future()
                    missing.append(i)
        self.hits += len(prompts) - len(missing)
        self.misses += len(missing)
        if missing:
            try:
                fresh = self.inner.generate([prompts[i] for i in missing], params)
            except BaseException as exc:
                self._settle(mine, error=exc)
                raise
            with self._lock:
                for i, gen in zip(missing, fresh):
                    self._db.execute("INSERT OR IGNORE INTO generations VALUES (?,?,?,?)",
                                     (keys[i], json.dumps(gen.texts, ensure_ascii=False), gen.prompt_tokens,
                                      gen.completion_tokens))
                    kept = self._db.execute("SELECT texts, prompt_tokens, completion_tokens FROM generations"
                                            " WHERE key = ?", (keys[i],)).fetchone()
                    stored = json.loads(kept[0]) if kept else gen.texts
                    # another process answered it first: its answer is this one's too
                    out[i] = gen if stored == gen.texts else Generation(stored, kept[1], kept[2], {"cached": True})
            self._settle(mine, answers={keys[i]: out[i] for i in missing})
        for i, future in shared:  # waited for only after this call's own are settled: no two calls wait on each other
            gen = future.result()
            out[i] = Generation(list(gen.texts), gen.prompt_tokens, gen.completion_tokens, {"cached": True})
        return out  # type: ignore[return-value]

    def _settle(self, futures: dict[str, Future], *, answers: dict | None = None,
                error: BaseException | None = None) -> None:
        with self._lock:
            for key, future in futures.items():
                del self._in_flight[key]
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(answers[key])

    def close(self) -> None:
        self._db.close()
