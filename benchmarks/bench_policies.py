"""Added latency of the reward policies per request, next to one embedding pass, on this machine.

- scoring n = 1, 4, 8 candidates: features (style + embeddings), K head rewards, the user's routed weights,
  mixture win rates and the pick (``policies.score_candidates`` + ``select``); candidate vectors given;
- one online routing step: features of (kept text, draft), per-head losses, Hedge update (vectors given);
- reference: one embedding pass of the context, and of the n candidates (MiniLM, the agent's embedder).

    .venv/bin/python benchmarks/bench_policies.py [--repeat 50]

Writes benchmarks/results/bench_policies.json (median and p90 milliseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from redline.evals.lamp import LAMP_DATA, load_writers  # noqa: E402
from redline.policies import MixtureRewardModel, RewardFeatures, score_candidates, select, update_state  # noqa: E402


def timed(fn, repeat: int) -> dict:
    fn()  # warm up
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(float(np.median(samples)), 3), "p90_ms": round(float(np.percentile(samples, 90)), 3)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_policies.json")
    args = ap.parse_args(argv)
    from redline.retrieval import Embedder

    writers = load_writers(LAMP_DATA)
    rows = next(iter(writers.values()))[:8]
    context = rows[0]["instruction"]
    drafts, edits = [r["preedit"] for r in rows], [r["postedit"] for r in rows]  # ~200-word paragraphs
    embedder = Embedder()
    embedder.encode(["warm up"])
    vec = embedder.encode([context, *drafts, *edits])
    ctx, dvec, evec = vec[0], vec[1:9], vec[9:]
    feats = RewardFeatures()
    ctx8 = np.repeat(ctx[None], 8, axis=0)
    model = MixtureRewardModel(n_heads=args.heads, seed=0, max_iter=100).fit(
        ctx8, feats.transform(ctx8, evec, edits), feats.transform(ctx8, dvec, drafts))
    user = {"weights": [1.0 / args.heads] * args.heads, "steps": 0}
    results = {"embed_context": timed(lambda: embedder.encode([context]), max(5, args.repeat // 5))}
    for n in (1, 4, 8):
        cands, cvec = drafts[:n], dvec[:n]
        results[f"score_n{n}"] = timed(
            lambda: select(score_candidates(model, feats, ctx, cvec, cands, user["weights"])["win_rates"]),
            args.repeat)
        results[f"embed_candidates_n{n}"] = timed(lambda: embedder.encode(cands), max(3, args.repeat // 10))

    def routing_step():
        phi = feats.transform(ctx, np.stack([evec[0], dvec[0]]), [edits[0], drafts[0]])
        return update_state(user, model.head_losses(phi[:1], phi[1:])[0], tau=1.0)

    results["routing_step"] = timed(routing_step, args.repeat)
    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                       "load_average": [round(x, 2) for x in os.getloadavg()]},
           "heads": args.heads, "candidate_words": int(np.mean([len(d.split()) for d in drafts])),
           "repeat": args.repeat, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
