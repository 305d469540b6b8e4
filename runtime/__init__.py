"""Process-wide concerns every package shares and none owns: the model-loading lock and the environment the
model libraries (transformers, sentence-transformers, the Hugging Face hub) read.

It imports no other part of redline, so every package may import it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["MODEL_LOADING", "quiet_offline_models", "cpu_has_bf16"]

# Every model load in the process holds this. transformers imports its submodules lazily, and two threads
# importing them at once (the server's warm-up loading MiniLM while a request converts SmolLM2) can be
# handed a partially initialised module: "cannot import name 'AutoConfig' from 'transformers'".
MODEL_LOADING = threading.RLock()

_QUIET_OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
                  "TOKENIZERS_PARALLELISM": "false",
                  # OpenMP threads that wait by spinning hold a core another thread of the process (the embedder
                  # beside the generator) or another process needs: with the two cores shared, generation ran 5-10x
                  # slower than with waiting threads that sleep. Read when torch/faiss load their OpenMP runtime.
                  "OMP_WAIT_POLICY": "PASSIVE"}


def quiet_offline_models(environ: dict | None = None) -> dict:
    """Default the model libraries to offline and quiet (no hub downloads, progress bars or fork warnings), and
    their OpenMP threads to sleep rather than spin while they wait, in ``environ`` (default ``os.environ``),
    keeping values already set; returns it. Call it before torch or faiss is imported."""
    environ = os.environ if environ is None else environ
    for name, value in _QUIET_OFFLINE.items():
        environ.setdefault(name, value)
    return environ


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (Linux ``/proc/cpuinfo`` flags avx512_bf16 or amx_bf16)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})
