"""Batched candidates vs one request at a time, through a real generator back-end.

best-of-n: ``n`` samples of one prompt in ONE call (the server's ``n``) vs ``n`` sequential calls of n=1.
RPS: 4 prompts (one document, four preferences: what RPS sends) in ONE batched call (concurrent requests on
the ``openai`` back-end, one padded batch on ``transformers``) vs 4 sequential calls.
The figure is the ratio (sequential wall / batched wall) and tokens/s; absolute CPU times mean little.

    scripts/vllm-server start       # then:
    .venv/bin/python benchmarks/bench_batching.py --generator openai --url http://127.0.0.1:8000/v1
    .venv/bin/python benchmarks/bench_batching.py --generator transformers

Appends to benchmarks/results/bench_batching.json (one entry per back-end) and redraws bench_batching.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = Path(__file__).resolve().parents[1]
PREFERENCES = ["bullet points, brief", "second person, immersive", "question answering style",
               "casual tone, no closing"]


def build(args):
    if args.generator == "openai":
        from redline.agent.generators.openai_backend import OpenAIGenerator

        return OpenAIGenerator(args.url, timeout=600)
    from redline.agent.generators.model_files import ensure_converted_model
    from redline.agent.generators.transformers_backend import TransformersGenerator

    return TransformersGenerator(ensure_converted_model(REPO / ".redline" / "models")).load()


def timed(fn):
    t = time.perf_counter()
    outs = fn()
    return time.perf_counter() - t, sum(o.completion_tokens for o in outs)


def measure(fn, repeats: int) -> dict:
    runs = [timed(fn) for _ in range(repeats)]
    wall = statistics.median(w for w, _ in runs)
    tokens = statistics.median(t for _, t in runs)
    return {"wall_s": round(wall, 3), "tokens": int(tokens),
            "tokens_per_s": round(sum(t for _, t in runs) / sum(w for w, _ in runs), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", choices=["openai", "transformers"], required=True)
    ap.add_argument("--url", default="http://127.0.0.1:8000/v1", help="OpenAI-compatible base URL (openai)")
    ap.add_argument("--ns", default="1,2,4,8", help="best-of-n sizes")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per cell (the median is reported)")
    ap.add_argument("--out", default="benchmarks/results/bench_batching.json")
    args = ap.parse_args()

    from tqdm import tqdm

    from redline.agent import GenerationParams, prompts

    generator = build(args)
    doc = json.loads((REPO.parent / "shared/data/sources/reddit_tldr_test.jsonl").read_text()
                     .splitlines()[0])["instruction"]
    target = prompts.task_prompt("summarize", doc, PREFERENCES[0])
    rps_prompts = [prompts.task_prompt("summarize", doc, p) for p in PREFERENCES]

    def params(n, i):  # a fresh seed per call, so sequential calls sample like one n-call does
        return GenerationParams(n=n, temperature=0.8, max_tokens=args.max_tokens, seed=1000 + i)

    generator.generate([target], params(1, 0))  # warm-up (model load, first request)
    ns = [int(x) for x in args.ns.split(",")]
    rows = []
    with tqdm(total=2 * len(ns) + 2, desc=f"{args.generator}") as bar:
        for n in ns:
            batched = measure(lambda: generator.generate([target], params(n, 0)), args.repeats)
            bar.update()
            sequential = measure(lambda: [o for i in range(n) for o in generator.generate([target], params(1, i))],
                                 args.repeats)
            bar.update()
            rows.append({"case": f"best_of_n n={n}", "batched": batched, "sequential": sequential})
        batched = measure(lambda: generator.generate(rps_prompts, params(1, 0)), args.repeats)
        bar.update()
        sequential = measure(
            lambda: [o for i, p in enumerate(rps_prompts) for o in generator.generate([p], params(1, i))], args.repeats)
        bar.update()
        rows.append({"case": f"rps {len(rps_prompts)} prompts", "batched": batched, "sequential": sequential})
    for r in rows:
        r["speedup"] = round(r["sequential"]["wall_s"] / r["batched"]["wall_s"], 2)
        r["throughput_ratio"] = round(r["batched"]["tokens_per_s"] / r["sequential"]["tokens_per_s"], 2)

    print(f"\n{args.generator} ({generator.model_name}), max_tokens={args.max_tokens}, median of {args.repeats}")
    print(f"{'case':<22}{'batched s':>10}{'tok/s':>8}{'sequential s':>14}{'tok/s':>8}{'speedup':>9}{'tok/s ratio':>13}")
    for r in rows:
        b, s = r["batched"], r["sequential"]
        print(f"{r['case']:<22}{b['wall_s']:>10.2f}{b['tokens_per_s']:>8.1f}{s['wall_s']:>14.2f}"
              f"{s['tokens_per_s']:>8.1f}{r['speedup']:>9.2f}{r['throughput_ratio']:>13.2f}")

    out = REPO / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {}
    results[args.generator] = {
        "model": generator.model_name, "url": args.url if args.generator == "openai" else None,
        "max_tokens": args.max_tokens, "repeats": args.repeats, "temperature": 0.8, "rows": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_batching.py", *sys.argv[1:]]),
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(results))
    cases = [r["case"] for r in next(iter(results.values()))["rows"]]
    for i, (name, res) in enumerate(sorted(results.items())):
        speedups = {r["case"]: r["speedup"] for r in res["rows"]}
        ax.bar([j + i * width for j in range(len(cases))], [speedups.get(c, 0) for c in cases], width,
               label=f"{name} ({res['model']})")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(cases))], cases, rotation=15)
    ax.set_ylabel("sequential wall / batched wall")
    ax.set_title("Candidates in one batched call vs one request at a time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
