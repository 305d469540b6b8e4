"""The packages' public surfaces are small and deliberate: changing one is a visible decision."""

import redline.agent as agent
import redline.retrieval as retrieval


def test_agent_all():
    assert sorted(agent.__all__) == sorted([
        "Agent", "GenerateOptions", "GenerateResult", "EditReceipt", "LearnResult", "Settings", "get_settings",
        "EditCost", "edit_cost", "tokenize", "AgentError", "InvalidInput", "UnknownInteraction", "UnknownUser",
        "UnknownPreference", "EditConflict", "GeneratorUnavailable", "Generation", "GenerationParams", "Generator",
        "ScriptedGenerator",
    ])
    for name in agent.__all__:
        assert hasattr(agent, name), name


def test_retrieval_all():
    assert sorted(retrieval.__all__) == sorted([
        "Embedder", "packaged_model_path", "Store", "SCHEMA_VERSION", "PreferenceIndex", "IndexCache", "Neighbour",
        "RetrievalError", "NotFound", "Conflict", "EmbedderUnavailable",
    ])


def test_core_packages_do_not_import_the_edges():
    import pathlib

    root = pathlib.Path(agent.__file__).resolve().parents[1]
    for package in ("agent", "retrieval", "policies"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            for edge in ("import click", "from click", "import fastapi", "from fastapi", "from api", "import api"):
                assert edge not in text, f"{path} imports an edge ({edge})"
    for path in (root / "retrieval").rglob("*.py"):
        assert "from agent" not in path.read_text() and "import agent" not in path.read_text(), path
