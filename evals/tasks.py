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
    """``rounds`` documents, as equal a share per source as possible, shuffled across sources by ``seed``.

    Every method run with the same seed sees the same order.
    """
    sources = sources or sorted({d.source for d in documents})
    rng = random.Random(seed)
    pools = {s: [d for d in documents if d.source == s] for s in sources}
    for pool in pools.values():
        rng.shuffle(pool)
    picked: list[Document] = []
    i = 0
    while len(picked) < rounds:
        progressed = False
        for s in sources:
            if len(picked) < rounds and i < len(pools[s]):
                picked.append(pools[s][i])
                progressed = True
        if not progressed:
            break
        i += 1
    rng.shuffle(picked)
    return picked
