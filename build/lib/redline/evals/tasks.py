"""The PRELUDE tasks: documents from several sources, one latent preference per source.

Documents are vendored in ``evals/data/<task>.jsonl`` (see ``evals/data/SOURCES.md``); the rule users
in ``evals/data/users.yaml`` (or ``--users-file``) say which preference each source's documents carry.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DATA_DIR", "TASKS", "Document", "load_documents", "round_order"]

DATA_DIR = Path(__file__).with_name("data")
TASKS = ("summarize", "email")


@dataclass(frozen=True)
class Document:
    id: str
    source: str
    text: str


def load_documents(task: str, data_dir: Path = DATA_DIR) -> list[Document]:
    """Every vendored document of ``task``, in file order."""
    path = Path(data_dir) / f"{task}.jsonl"
    if task not in TASKS or not path.is_file():
        raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    return [Document(r["id"], r["source"], r["text"])
            for r in (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())]


def round_order(documents: list[Document], rounds: int, seed: int, sources: list[str] | None = None) -> list[Document]:
    """``rounds`` documents shuffled across sources by ``seed``, as equal a share per source as possible.

    Rounds come in cycles of one document per source (in a seeded order within each cycle), so any
    prefix is balanced and a shorter run is the start of a longer one with the same seed (and reuses its
    cached generations). Every method run with the same seed sees the same order.
    """
    sources = sources or sorted({d.source for d in documents})
    rng = random.Random(seed)
    pools = {s: [d for d in documents if d.source == s] for s in sources}
    for s in sources:
        rng.shuffle(pools[s])
    picked: list[Document] = []
    for i in range(max(len(p) for p in pools.values())):
        cycle = [pools[s][i] for s in sources if i < len(pools[s])]
        rng.shuffle(cycle)
        picked.extend(cycle)
    return picked[:rounds]
