"""Shared fixtures: cheap in-memory stores, a scripted generator, and the real embedded models
(MiniLM and SmolLM2) loaded once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from redline.runtime import quiet_offline_models

quiet_offline_models()

REPO = Path(__file__).resolve().parents[1]
# Converted once and shared by every test session and subprocess (gitignored).
MODELS_DIR = Path(os.environ.get("REDLINE_TEST_MODELS_DIR", REPO / ".redline" / "models"))
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def fresh_store():
    from redline.store import Store

    store = Store(":memory:")
    yield store
    store.close()


@pytest.fixture
def scripted():
    from redline.agent import ScriptedGenerator

    return ScriptedGenerator()


@pytest.fixture(scope="session")
def embedder():
    from redline.retrieval import Embedder

    emb = Embedder()
    emb.encode(["warm up"])
    return emb


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    from redline.agent.generators.model_files import ensure_converted_model

    return ensure_converted_model(MODELS_DIR)


@pytest.fixture(scope="session")
def smollm(smollm_path):
    from redline.agent.generators.transformers_backend import TransformersGenerator

    return TransformersGenerator(smollm_path).load()


@pytest.fixture
def make_agent(tmp_path, embedder):
    """Build an Agent on a fresh data dir with the real embedder and a given generator."""
    from redline.agent import Agent, Settings

    def build(generator, **settings):
        settings.setdefault("data_dir", tmp_path / "data")
        settings.setdefault("max_tokens", 48)
        return Agent(Settings(**settings), embedder=embedder, generator=generator)

    return build
