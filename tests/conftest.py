"""Shared fixtures: cheap in-memory stores, a scripted generator, a hash embedder for the fast tests, and the
real embedded models (MiniLM and SmolLM2) loaded once per test session for the integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from redline.runtime import quiet_offline_models

quiet_offline_models()

REPO = Path(__file__).resolve().parents[1]
# Converted once and shared by every test session and subprocess (gitignored).
MODELS_DIR = Path(os.environ.get("REDLINE_TEST_MODELS_DIR", REPO / ".redline" / "models"))
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def fresh_store():
    from redline.store import SQLiteStore

    store = SQLiteStore(":memory:")
    yield store
    store.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server for the session (initdb + pg_ctl in a temporary folder, a free loopback port);
    skipped, saying why, only where PostgreSQL is not installed."""
    from doubles.postgres import PostgresServer, unavailable

    reason = unavailable()
    if reason:
        pytest.skip(f"no PostgreSQL for this test: {reason}")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL of a new, empty database (a schema of the throwaway server's) for one test."""
    return postgres_server.fresh_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request, tmp_path):
    """Opens stores on one database of the back-end the test is parametrised with (call it again: another process's
    store on the same database)."""
    from redline.store import PostgresStore, SQLiteStore

    opened = []
    if request.param == "sqlite":
        def make():
            opened.append(SQLiteStore(tmp_path / "r.db"))
            return opened[-1]
    else:
        url = request.getfixturevalue("postgres_url")

        def make():
            opened.append(PostgresStore(url, pool_size=4))
            return opened[-1]
    yield make
    for store in opened:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_env(request) -> dict[str, str]:
    """The environment that points redline's processes at each back-end in turn: nothing (SQLite in the data
    directory), then ``REDLINE_DATABASE_URL`` of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return {}
    return {"REDLINE_DATABASE_URL": request.getfixturevalue("postgres_url")}


@pytest.fixture
def any_store(store_factory):
    """A store of each back-end in turn: SQLite (in a file) and PostgreSQL."""
    return store_factory()


@pytest.fixture
def scripted():
    from doubles import ScriptedGenerator

    return ScriptedGenerator()


class HashEmbedder:
    """Bag-of-words hashing into 64 dims, L2-normalised: a real, fast, deterministic stand-in for MiniLM
    (texts that share words are near), so the fast tests load no model."""

    def encode(self, texts):
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, sum(map(ord, w.strip(".,'\"()"))) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


@pytest.fixture(scope="session")
def _minilm():
    from redline.retrieval import Embedder

    emb = Embedder()
    emb.encode(["warm up"])
    return emb


@pytest.fixture
def embedder(request, _minilm):
    """The real MiniLM, for integration tests only: a fast test that asks for it fails."""
    if request.node.get_closest_marker("integration") is None:
        pytest.fail("the real embedder is for tests marked integration; fast tests use HashEmbedder")
    return _minilm


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    from redline.agent.generators.model_files import ensure_converted_model

    return ensure_converted_model(MODELS_DIR, "smollm2")  # the fast model: tests that need speed keep it


@pytest.fixture(scope="session")
def qwen():
    """The default generator (Qwen2.5-Coder-0.5B-Instruct, converted once), in the CPU's fastest precision."""
    from redline.agent.generators.model_files import ensure_converted_model
    from redline.agent.generators.transformers_backend import TransformersGenerator

    return TransformersGenerator(ensure_converted_model(MODELS_DIR, "qwen2.5-coder-0.5b")).load()


@pytest.fixture(scope="session")
def smollm(smollm_path):
    from redline.agent.generators.transformers_backend import TransformersGenerator

    return TransformersGenerator(smollm_path).load()


@pytest.fixture
def make_agent(request, tmp_path):
    """Build an Agent on a fresh data dir with a given generator; the embedder is MiniLM in integration tests
    and ``HashEmbedder`` in the fast ones."""
    from redline.agent import Agent, Settings

    embedder = (request.getfixturevalue("embedder") if request.node.get_closest_marker("integration")
                else HashEmbedder())

    def build(generator, **settings):
        settings.setdefault("data_dir", tmp_path / "data")
        settings.setdefault("max_tokens", 48)
        return Agent(Settings(**settings), embedder=embedder, generator=generator)

    return build
