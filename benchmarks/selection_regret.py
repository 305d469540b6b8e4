"""Selection regret on the embedded generator (SmolLM2): does the routed reward pick the candidate the
simulated user would edit least?

A simulated user wants short, plain text: their edit of any draft keeps its first two sentences, at most
35 words, and drops exclamations and adverbs of degree. For each context the generator writes n candidates
(one batched call per round); the edit cost of each candidate is the word-level Levenshtein distance to the
user's edit of it. Leaving one context out at a time, the other contexts give pairs (user's edit ≻ candidate)
for the reward heads and the user's routing state; on the held-out context we count how often the routed reward
picks the lowest-cost candidate (ties count), its mean cost and regret, against random choice and the first
sample (what greedy would keep).

    .venv/bin/python benchmarks/selection_regret.py --contexts 12 --n 4 --max-tokens 48

Writes benchmarks/results/selection_regret.json. Generations are cached (seeded) under .redline/bench-cache.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from redline.agent import (  # noqa: E402
    GenerationParams,
    edit_cost,
    prompts,  # noqa: E402
)
from redline.policies import MixtureRewardModel, RewardFeatures, combine, replay  # noqa: E402

DEGREE = re.compile(r"\b(very|really|extremely|incredibly|truly|highly|quite|absolutely)\s+", re.I)


def simulated_edit(text: str) -> str:
    """The simulated user's kept version of ``text``: short and plain."""
    text = DEGREE.sub("", text.replace("!", "."))
    sentences = re.split(r"(?<=[.?])\s+", " ".join(text.split()))
    words = " ".join(sentences[:2]).split()[:35]
    out = " ".join(words)
    return out if out.endswith((".", "?")) else out + "."


def contexts(count: int) -> list[str]:
    rows = [json.loads(line) for line in (REPO / "evals" / "data" / "summarize.jsonl").read_text().splitlines()]
    return [r["text"][:900] for r in rows[:count]]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contexts", type=int, default=12)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "selection_regret.json")
    args = ap.parse_args(argv)

    from redline.agent.generators.cache import CachingGenerator
    from redline.agent.generators.model_files import ensure_converted_model
    from redline.agent.generators.transformers_backend import TransformersGenerator
    from redline.retrieval import Embedder

    gen = CachingGenerator(TransformersGenerator(ensure_converted_model(REPO / ".redline" / "models")).load(),
                           REPO / ".redline" / "bench-cache" / "selection_regret.sqlite")
    embedder = Embedder()
    ctxs = contexts(args.contexts)
    clock = time.perf_counter()
    outs = []
    for i, ctx in enumerate(ctxs):  # one batched call (n samples) per context
        prompt = prompts.task_prompt("summarize", ctx, None)
        outs.append(gen.generate([prompt], GenerationParams(n=args.n, temperature=1.0, max_tokens=args.max_tokens,
                                                            seed=args.seed + i))[0].texts)
        print(f"context {i + 1}/{len(ctxs)} generated ({time.perf_counter() - clock:.0f} s)", file=sys.stderr)
    gen_seconds = time.perf_counter() - clock
    edits = [[simulated_edit(t) for t in cands] for cands in outs]
    costs = np.array([[edit_cost(t, e) for t, e in zip(cands, eds)] for cands, eds in zip(outs, edits)], float)
    texts = list(dict.fromkeys([*ctxs, *(t for c in outs for t in c), *(e for c in edits for e in c)]))
    vec = dict(zip(texts, embedder.encode(texts)))
    feats = RewardFeatures()

    def phi(cs, ts):
        return feats.transform(np.stack([vec[c] for c in cs]), np.stack([vec[t] for t in ts]), ts)

    rows, states, n_train = [], [], []
    for held in range(len(ctxs)):  # leave one context out: train on the others' pairs, pick on it
        train = [(c, t, e) for i, (c, cands, eds) in enumerate(zip(ctxs, outs, edits)) if i != held
                 for t, e in zip(cands, eds) if t.strip() != e.strip()]
        if not train:
            continue
        ctx_arr = np.stack([vec[c] for c, _, _ in train])
        phi_w = phi([c for c, _, _ in train], [e for _, _, e in train])
        phi_l = phi([c for c, _, _ in train], [t for _, t, _ in train])
        model = MixtureRewardModel(n_heads=args.heads, seed=args.seed).fit(ctx_arr, phi_w, phi_l)
        state = replay(model.head_losses(phi_w, phi_l), args.heads)
        states.append(state)
        n_train.append(len(train))
        ctx, cands, cost = ctxs[held], outs[held], costs[held]
        r = model.rewards(phi([ctx] * len(cands), cands))
        w = combine(model.route(vec[ctx])[0], state["weights"])
        pick = int(np.argmax(r @ w))
        rows.append({"min": cost.min(), "routed": cost[pick], "random": cost.mean(), "first": cost[0],
                     "hit": float(cost[pick] == cost.min()), "random_hit": float(np.mean(cost == cost.min())),
                     "all_tied": float(cost.min() == cost.max())})
    mean = lambda key: round(float(np.mean([r[key] for r in rows])), 3)  # noqa: E731
    result = {
        "setup": {"contexts": len(ctxs), "protocol": "leave one context out", "test_contexts": len(rows),
                  "n": args.n, "max_tokens": args.max_tokens, "heads": args.heads,
                  "train_pairs_mean": round(float(np.mean(n_train)), 1),
                  "generator": gen.model_name, "generation_seconds": round(gen_seconds, 1)},
        "picks_lowest_cost": {"routed": mean("hit"), "random": mean("random_hit")},
        "mean_edit_cost": {"routed": mean("routed"), "random": mean("random"), "first_sample": mean("first"),
                           "oracle": mean("min")},
        "mean_regret": {"routed": round(mean("routed") - mean("min"), 3),
                        "random": round(mean("random") - mean("min"), 3)},
        "contexts_with_all_candidates_tied": mean("all_tied"),
        "candidate_costs": costs.tolist(),
        "routing_states": states,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("routing_states", "candidate_costs")}, indent=2))
    return result


if __name__ == "__main__":
    main()
