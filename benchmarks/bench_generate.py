"""Latency split of one ``Agent.generate`` on the embedded defaults (real MiniLM, FAISS, SQLite, SmolLM2).

Seeds a user with past preferences (real context embeddings), then times generate calls and reports the
median of each stage: embed, retrieve, aggregate, generate, store. Writes benchmarks/results/bench_generate.json.

    .venv/bin/python benchmarks/bench_generate.py --history 200 --calls 5 --k 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--history", type=int, default=200, help="past preferences stored for the user")
    ap.add_argument("--calls", type=int, default=5, help="timed generate calls")
    ap.add_argument("--k", type=int, default=5, help="CIPHER k")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--out", default="benchmarks/results/bench_generate.json")
    args = ap.parse_args()

    from tqdm import tqdm

    from redline.agent import Agent, Settings
    from redline.agent.generators.model_files import ensure_converted_model
    from redline.store import now_iso, vector_to_blob

    repo = Path(__file__).resolve().parents[1]
    model = ensure_converted_model(repo / ".redline" / "models")
    lines = (repo.parent / "shared/data/sources/reddit_tldr_test.jsonl").read_text().splitlines()
    docs = [json.loads(line)["instruction"] for line in lines[: args.history + args.calls]]
    with tempfile.TemporaryDirectory() as tmp:
        agent = Agent(Settings(data_dir=tmp, generator_model=str(model), k=args.k, max_tokens=args.max_tokens,
                               temperature=0.0))
        uid = agent.store.user_id("default", "bench")
        vectors = agent.embedder.encode(docs[: args.history])
        prefs = ["bullet points, brief", "second person, immersive", "question answering style",
                 "casual tone, no closing", "short sentences, playful"]
        with agent.store._sql.transaction() as conn:  # bulk rows (a private door)
            for i, v in enumerate(vectors):
                conn.execute("INSERT INTO preferences (user_id, text, kind, context_vector, created_at, updated_at,"
                             " user_edited) VALUES (?,?,?,?,?,?,0)",
                             (uid, prefs[i % len(prefs)], "inferred", vector_to_blob(v), now_iso(), now_iso()))
            conn.execute("UPDATE users SET version = version + 1 WHERE id = ?", (uid,))
        agent.generate("bench", docs[0])  # warm-up: loads the generator, builds the index
        rows = []
        for doc in tqdm(docs[args.history:], desc="generate"):
            t = time.perf_counter()
            r = agent.generate("bench", doc)
            rows.append({**r.timings_ms, "total_ms": (time.perf_counter() - t) * 1000, "tokens_out": r.tokens_out})
    med = {k: round(statistics.median(r[k] for r in rows), 2) for k in rows[0]}
    result = {"benchmark": "generate_latency_split", "history": args.history, "k": args.k, "calls": args.calls,
              "max_tokens": args.max_tokens, "median": med, "runs": rows, "machine": f"{os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{'stage':<14}{'median ms':>12}")
    for k, v in med.items():
        print(f"{k:<14}{v:>12}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
