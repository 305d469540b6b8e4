"""Added latency of the reward per request, next to embedding the context and generating the candidates.

- scoring n = 1, 4, 8 candidates: their features relative to the greedy draft (``EditFeatures``), the user's
  reward, win rates and the pick (``policies.score_candidates`` + ``select``);
- one online step after an edit: the pair's features, the Hedge step and the running sum (``update``);
- for scale: one embedding pass of the context (MiniLM, which generation does anyway) and, with
  ``--generator-model``, generating the candidates the agent drafts for best-of-n (the greedy draft, then the
  n - 1 revisions of it in one batched call; 96 tokens each).

    .venv/bin/python benchmarks/bench_policies.py [--repeat 50] [--generator-model qwen2.5-coder-0.5b]

Writes benchmarks/results/bench_policies.json (median and p90 milliseconds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _results import machine, write_results  # noqa: E402

from redline.evals.lamp import LAMP_DATA, load_writers  # noqa: E402
from redline.policies import EditFeatures, EditProfileReward, score_candidates, select  # noqa: E402


def timed(fn, repeat: int) -> dict:
    fn()  # warm up
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(float(np.median(samples)), 3), "p90_ms": round(float(np.percentile(samples, 90)), 3)}


def generation(model: str, context: str, n: int, repeat: int) -> dict:
    """Milliseconds of the agent's best-of-n drafting on ``model``: the greedy draft, then n − 1 revisions."""
    from redline.agent import GenerationParams, Settings, prompts
    from redline.agent.generators import load_generator

    gen = load_generator(Settings(data_dir=REPO / ".redline", generator_model=model))
    prompt = prompts.task_prompt("summarize", context, "brief, plain words")
    greedy = GenerationParams(n=1, temperature=0.0, max_tokens=96)

    def draft():
        text = gen.generate([prompt], greedy)[0].texts[0]
        if n > 1:
            gen.generate([prompts.revision_prompt(text, "brief, plain words")],
                         GenerationParams(n=n - 1, temperature=0.8, max_tokens=96, seed=0))

    return {"model": gen.model_name, **timed(draft, repeat)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--generator-model", help="also time the generation of the candidates on this model")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_policies.json")
    args = ap.parse_args(argv)
    from redline.retrieval import Embedder

    records = [r for rows in load_writers(LAMP_DATA).values() for r in rows]
    features = EditFeatures()
    Z = features.transform([r["postedit"] for r in records], [r["preedit"] for r in records])
    writers = [w for w, rows in load_writers(LAMP_DATA).items() for _ in rows]
    model = EditProfileReward(args.heads).fit(Z, writers, feature_names=features.names)
    state = model.replay(Z[:40])
    greedy = records[0]["preedit"]  # ~200-word paragraphs; the candidates are writers' edits of it and others
    context = records[0].get("instruction") or greedy
    embedder = Embedder()
    embedder.encode(["warm up"])
    results = {"embed_context": timed(lambda: embedder.encode([context]), max(5, args.repeat // 5))}
    for n in (1, 4, 8):
        candidates = [greedy, *[records[i]["postedit"] for i in range(n - 1)]]
        results[f"score_n{n}"] = timed(
            lambda: select(score_candidates(model, state, features.transform(candidates, greedy))["rewards"]),
            args.repeat)
    results["online_step"] = timed(
        lambda: model.update(state, features.transform([records[1]["postedit"]], records[1]["preedit"])[0]),
        args.repeat)
    if args.generator_model:
        for n in (1, 4):
            results[f"generate_n{n}"] = generation(args.generator_model, context, n, max(2, args.repeat // 25))
    out = {"machine": machine(),
           "heads": args.heads, "candidate_words": int(np.mean([len(r["preedit"].split()) for r in records])),
           "repeat": args.repeat, "results": results}
    return write_results(out, args.out)


if __name__ == "__main__":
    main()
