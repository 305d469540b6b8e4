"""The embedder's batching thread (retrieval._batcher.MicroBatcher): concurrent requests share one model call,
and a failure reaches every waiter."""

import threading
import time

import numpy as np
import pytest

from redline.retrieval._batcher import MicroBatcher


class GatedModel:
    """Records each call's texts; the first call waits until ``release`` is set (so others queue meanwhile)."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts):
        self.calls.append(list(texts))
        self.entered.set()
        self.release.wait(10)
        return np.array([[float(len(t)), float(i)] for i, t in enumerate(texts)], dtype=np.float32)


def in_threads(fn, args_list):
    out = [None] * len(args_list)
    threads = [threading.Thread(target=lambda i=i, a=a: out.__setitem__(i, fn(*a))) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    return threads, out


def wait_queued(batcher, requests=0):
    end = time.monotonic() + 10
    while len(batcher._requests) < requests and time.monotonic() < end:
        time.sleep(0.005)


def test_requests_waiting_together_share_one_call_and_get_their_own_rows():
    model = GatedModel()
    batcher = MicroBatcher(model)
    first, _ = in_threads(batcher.submit, [(["warm"],)])
    model.entered.wait(5)
    texts = [[f"text {i}", "x" * i] for i in range(6)]
    threads, out = in_threads(batcher.submit, [(t,) for t in texts])
    wait_queued(batcher, requests=6)
    model.release.set()
    for t in first + threads:
        t.join(10)
    assert len(model.calls) == 2 and sorted(model.calls[1]) == sorted(x for t in texts for x in t)
    for t, vectors in zip(texts, out):
        assert vectors.shape == (2, 2) and list(vectors[:, 0]) == [len(x) for x in t]


def test_a_failure_reaches_every_waiter_and_the_thread_goes_on():
    calls = []

    def model(texts):
        calls.append(texts)
        if len(calls) == 1:
            raise RuntimeError("cannot load the model")
        return np.zeros((len(texts), 2), dtype=np.float32)

    batcher = MicroBatcher(model)
    with pytest.raises(RuntimeError, match="cannot load the model"):
        batcher.submit(["a"])
    assert batcher.submit(["b", "c"]).shape == (2, 2)
