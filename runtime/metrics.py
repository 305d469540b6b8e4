"""What every process's Prometheus metrics share: the latency buckets, and where a process of ``redline serve`` writes
its metrics so that any API process reports them all (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import os

__all__ = ["LATENCY_BUCKETS", "MULTIPROC_ENV", "multiprocess_dir"]

LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120)
# Read by prometheus_client when it is first imported: set by the supervisor in its children's environment.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The folder this process's metrics go to when it runs under ``redline serve``, else None."""
    return os.environ.get(MULTIPROC_ENV) or None
