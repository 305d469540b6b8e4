"""The packages' public surfaces are small and deliberate: changing one is a visible decision."""

import redline.agent as agent
import redline.learner as learner
import redline.retrieval as retrieval
import redline.store as store


def test_agent_all():
    assert sorted(agent.__all__) == sorted([
        "Agent", "GenerateOptions", "GenerateResult", "EditReceipt", "LearnResult", "JobOutcome", "Settings",
        "EditCost", "edit_cost", "tokenize", "word_diff", "AgentError", "InvalidInput", "UnknownInteraction",
        "UnknownUser", "UnknownPreference", "UnknownApiKey", "EditConflict", "GeneratorUnavailable",
        "EmbeddingUnavailable", "Generation", "GenerationParams", "Generator", "UnknownRule", "InvalidRule",
        "RuleConflict",
    ])
    for name in agent.__all__:
        assert hasattr(agent, name), name


def test_retrieval_all():
    assert sorted(retrieval.__all__) == sorted([
        "Embedder", "packaged_model_path", "PreferenceIndex", "IndexCache", "Neighbour", "RetrievalError",
        "EmbedderUnavailable",
    ])


def test_store_all():
    assert sorted(store.__all__) == sorted([
        "Store", "open_store", "SQLiteStore", "PostgresStore", "Jobs", "ApiKeys", "Checkpoints", "Leases", "Health",
        "SCHEMA_VERSION", "StoreError", "NotFound", "Conflict", "now_iso", "vector_to_blob", "blob_to_vector",
        "lost_a_race",
    ])
    for name in store.__all__:
        assert hasattr(store, name), name


def test_the_store_hands_out_no_transaction_nor_connection_and_both_back_ends_are_a_store():
    import re
    from pathlib import Path

    opened = store.open_store(None, ":memory:")
    assert isinstance(opened, store.Store) and isinstance(opened, store.SQLiteStore)
    for back_end in (store.SQLiteStore, store.PostgresStore):
        assert not hasattr(back_end, "transaction") and not hasattr(back_end, "db"), back_end
        missing = [name for name in dir(store.Store) if not name.startswith("_") and not hasattr(back_end, name)
                   and name not in store.Store.__annotations__]
        assert missing == [], (back_end, missing)
    root = Path(__file__).resolve().parents[1]
    for folder in ("agent", "api", "cli", "learner", "evals"):  # callers reach the store through its methods only
        for path in (root / folder).rglob("*.py"):
            assert not re.search(r"store\._sql\b|\.transaction\(\)|store\.db\b", path.read_text()), path
    opened.close()


def test_learner_all():
    assert sorted(learner.__all__) == sorted(["LearningWorker", "LearnerMetrics", "learner_agent", "run_learner"])
    for name in learner.__all__:
        assert hasattr(learner, name), name


def test_core_packages_do_not_import_the_edges():
    import pathlib

    root = pathlib.Path(agent.__file__).resolve().parents[1]
    edges = ("import click", "from click", "import fastapi", "from fastapi", "redline.api", "redline.cli",
             "redline.evals")
    for package in ("agent", "retrieval", "store", "policies", "learner"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            for edge in edges:
                assert edge not in text, f"{path} imports an edge ({edge})"
    for package in ("retrieval", "store", "policies"):
        for path in (root / package).rglob("*.py"):
            assert "redline.agent" not in path.read_text(), path
    for package in ("runtime", "text"):
        for path in (root / package).rglob("*.py"):
            assert "from redline" not in path.read_text() and "import redline" not in path.read_text(), path


def _imports(package: str) -> set[str]:
    """The redline packages that the modules of ``package`` import."""
    import pathlib
    import re

    root = pathlib.Path(agent.__file__).resolve().parents[1]
    found = set()
    for path in (root / package).rglob("*.py"):
        found |= {a or b for a, b in re.findall(r"^\s*(?:from|import) redline(?:\.(\w+)| import (\w+))",
                                                path.read_text(), re.M)}
    return found - {package}


def test_the_edges_are_thin_over_the_agent():
    # The HTTP package never reaches the store, policies, the learner or the evals (runtime: every process's log
    # format and metrics setup).
    assert _imports("api") <= {"agent", "runtime"} and "agent" in _imports("api")
    assert _imports("learner") <= {"agent", "runtime"}  # the learner role: the agent, never the HTTP edge
    assert _imports("cli") <= {"agent", "api", "learner", "evals", "runtime"}  # api/learner for serve/worker
    assert "api" not in _imports("evals") and "cli" not in _imports("evals")


def test_every_reader_of_text_reads_it_through_redline_text():
    """One reading of text: the leaf that the agent, the reward's features and the simulated users share."""
    assert _imports("policies") == {"text"}
    assert "text" in _imports("agent") and "text" in _imports("evals")


def test_agent_errors_know_no_http_and_the_api_maps_each_one():
    """The agent says what went wrong; the API alone decides the status: every error the agent exports has its own
    row in the API's table (a new error class without one would answer as a bare 400)."""
    import redline.agent as agent
    from redline.api.errors import AGENT_ERRORS, agent_status

    exported = {getattr(agent, name) for name in agent.__all__}
    errors = {cls for cls in exported if isinstance(cls, type) and issubclass(cls, agent.AgentError)}
    assert len(errors) >= 10
    for cls in errors:
        assert not hasattr(cls, "status") and not hasattr(cls, "code"), cls
        assert cls in AGENT_ERRORS, f"{cls.__name__} has no HTTP status in api/errors.py AGENT_ERRORS"
    assert agent_status(agent.UnknownRule("x")) == (404, "not_found")
    assert agent_status(agent.GeneratorUnavailable("x", retryable=False)) == (503, "generator_unavailable")

    class Narrower(agent.EditConflict):
        pass

    assert agent_status(Narrower("x")) == (409, "conflict")
