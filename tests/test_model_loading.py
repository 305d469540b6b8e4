"""Model loads in one process take turns (redline.runtime.MODEL_LOADING).

The server's warm-up thread loaded MiniLM while a first /v1/generate converted SmolLM2; transformers'
lazy submodule imports raced and the request failed with "cannot import name 'AutoConfig'". Each test
checks, from inside a load, that another thread cannot take the lock.
"""

import threading

import pytest

from redline.agent import GeneratorUnavailable
from redline.agent.generators import model_files
from redline.agent.generators.transformers_backend import TransformersGenerator
from redline.retrieval import Embedder
from redline.runtime import MODEL_LOADING


def held_by_another_thread() -> bool:
    free = []

    def probe():
        got = MODEL_LOADING.acquire(blocking=False)
        if got:
            MODEL_LOADING.release()
        free.append(got)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return not free[0]


def test_embedder_loads_under_the_lock(monkeypatch):
    seen = []
    monkeypatch.setattr(Embedder, "_read_model", lambda self: seen.append(held_by_another_thread()) or object())
    Embedder()._load()
    assert seen == [True]
    assert not held_by_another_thread()  # released afterwards


def test_gguf_conversion_runs_under_the_lock(monkeypatch, tmp_path):
    seen = []

    def convert(gguf, target):
        seen.append(held_by_another_thread())
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        (target / "model.safetensors").write_bytes(b"")

    monkeypatch.setattr(model_files, "assemble_gguf", lambda model, folder: tmp_path / "model.gguf")
    monkeypatch.setattr(model_files, "_convert", convert)
    target = model_files.ensure_converted_model(tmp_path / "models")
    assert seen == [True] and (target / "config.json").exists()
    model_files.ensure_converted_model(tmp_path / "models")
    assert seen == [True]  # converted once


def test_transformers_generator_loads_under_the_lock(monkeypatch, tmp_path):
    import transformers

    seen = []

    def from_pretrained(*args, **kwargs):
        seen.append(held_by_another_thread())
        raise OSError("no model here")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    with pytest.raises(GeneratorUnavailable, match="no model here"):
        TransformersGenerator(tmp_path).load()
    assert seen == [True]
    assert not held_by_another_thread()
