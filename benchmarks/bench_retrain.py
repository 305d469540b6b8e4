"""Seconds of one retraining of the shared reward at 5,000 and 50,000 stored pairs (issues 15 and 17).

A retraining reads every stored pair's features (and context vector, for the router) from SQLite, fits the
shared reward (closed form + EM), publishes the checkpoint, replays every user's state (vectorised) and writes
the states back: ``Agent.train_rewards(force=True)``, timed end to end. The store is seeded like a deployment:
pairs with realistic texts (LAMP paragraphs, ~1 kB each, which the retraining must NOT read), features taken
from the LAMP writers' real edits plus noise, one 384-d context vector each (MiniLM's size), 50 pairs per user.

    .venv/bin/python benchmarks/bench_retrain.py [--sizes 5000,50000] [--repeat 3]

Writes benchmarks/results/bench_retrain.json (median seconds per size, with and without the router).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the test doubles

from _results import machine, write_results  # noqa: E402

from redline.agent import Agent, Settings  # noqa: E402
from redline.evals.lamp import LAMP_DATA, load_writers  # noqa: E402
from redline.policies import FEATURES_VERSION, EditFeatures  # noqa: E402

from doubles import ScriptedGenerator  # noqa: E402


class NoEmbedder:
    """Retraining embeds nothing; this stands in so the benchmark loads no model."""

    def encode(self, texts):
        raise AssertionError("a retraining must not embed text")


def seed_store(agent: Agent, size: int, rng: np.random.Generator, per_user: int = 50) -> None:
    rows = [r for records in load_writers(LAMP_DATA).values() for r in records]
    real = EditFeatures().transform([r["postedit"] for r in rows], [r["preedit"] for r in rows])
    spread = real.std(axis=0)
    batch = []
    for i in range(size):
        user_id = agent.store.user_id("bench", f"user{i // per_user}")
        r = rows[i % len(rows)]
        vector = rng.normal(size=384).astype(np.float32)
        batch.append({"user_id": user_id, "context": r["instruction"], "chosen": r["postedit"],
                      "rejected": r["preedit"], "features": real[i % len(real)] + rng.normal(0, 0.1) * spread,
                      "features_version": FEATURES_VERSION, "context_vector": vector / np.linalg.norm(vector)})
        if len(batch) == 5000:
            agent.store.add_pairs(batch, source="bench")
            batch = []
    if batch:
        agent.store.add_pairs(batch, source="bench")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,50000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_retrain.json")
    args = ap.parse_args(argv)
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            agent = Agent(Settings(data_dir=Path(tmp), reward_heads=args.heads), embedder=NoEmbedder(),
                          generator=ScriptedGenerator())
            clock = time.perf_counter()
            seed_store(agent, size, np.random.default_rng(0))
            seeding = time.perf_counter() - clock
            db_mb = (Path(tmp) / "redline.db").stat().st_size / 1e6
            for router in (True, False):
                agent.settings.reward_router = router
                runs = [agent.train_rewards(force=True) for _ in range(args.repeat)]
                results[f"{size}{'' if router else '_no_router'}"] = {
                    "pairs": size, "users": size // 50, "router": router,
                    "seconds_median": round(float(np.median([r["seconds"] for r in runs])), 3),
                    "read_seconds_median": round(float(np.median([r["read_seconds"] for r in runs])), 3),
                    "seconds_all": [r["seconds"] for r in runs], "store_mb": round(db_mb, 1),
                    "seeding_seconds": round(seeding, 1)}
                print(json.dumps(results[f"{size}{'' if router else '_no_router'}"]), file=sys.stderr)
            agent.close()
    out = {"machine": machine(),
           "heads": args.heads, "repeat": args.repeat, "results": results}
    return write_results(out, args.out)


if __name__ == "__main__":
    main()
