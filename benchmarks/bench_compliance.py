"""Does the generator act on a preference it is given? Instruction following on the rule users' documents.

For every rule user in ``evals/data/users.yaml`` (both tasks) and a fixed set of their documents, the
generator writes the task twice: once with the user's true description in the prompt (the oracle prompt)
and once without a preference. Each draft is checked against every operation of that user (``op.check``,
the check the simulated user applies before editing), and the user's edit cost is computed. Reported per
operation kind, per user and overall, with and without the preference, beside tok/s and load time.

    .venv/bin/python benchmarks/bench_compliance.py --model qwen2.5-coder-0.5b --dtype bfloat16
    .venv/bin/python benchmarks/bench_compliance.py --model smollm2 --dtype float32
    .venv/bin/python benchmarks/bench_compliance.py --generator openai --url http://127.0.0.1:8000/v1 --label vllm-cpu

Each run is stored under its label in ``benchmarks/results/bench_compliance.json``; the markdown table
(``bench_compliance.md``) and the plot (``bench_compliance.png``) are rebuilt from all stored runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
RESULTS = REPO / "benchmarks" / "results"


def build_generator(args):
    """(generator, load seconds) for the chosen back-end, model and precision."""
    from redline.agent.generators.model_files import resolve_model

    extra = json.loads(args.extra_body) if args.extra_body else None
    if args.generator == "openai":
        from redline.agent.generators.openai_backend import OpenAIGenerator

        gen = OpenAIGenerator(args.url, args.served_model, timeout=600, extra_body=extra)
        return gen, 0.0
    if args.generator == "llama-server":
        from redline.agent.generators.llama_backend import LlamaServerGenerator
        from redline.agent.generators.llama_server import LlamaServer
        from redline.agent.generators.model_files import resolve_gguf

        started = time.perf_counter()
        server = LlamaServer(resolve_gguf(args.model, Path(args.models_dir)), slots=args.batch,
                             context=args.batch * 4096, log_path=REPO / ".redline" / "bench-llama-server.log")
        gen = LlamaServerGenerator(server=server, timeout=1200, extra_body=extra).load()
        return gen, time.perf_counter() - started
    import torch

    from redline.agent.generators.transformers_backend import TransformersGenerator

    path = resolve_model(args.model, Path(args.models_dir))
    started = time.perf_counter()
    gen = TransformersGenerator(
        path, dtype="float32" if args.dtype == "int8" else args.dtype, max_batch=args.batch
    ).load()
    if args.dtype == "int8":  # dynamic int8 quantisation of every Linear layer (weights int8, activations on the fly)
        gen._model = torch.ao.quantization.quantize_dynamic(gen._model, {torch.nn.Linear}, dtype=torch.qint8)
    return gen, time.perf_counter() - started


def run(args) -> dict:
    from redline.agent import prompts
    from redline.agent.editcost import edit_cost
    from redline.agent.generators import GenerationParams
    from redline.evals.tasks import load_documents
    from redline.evals.users import RuleUser, load_user_specs

    gen, load_s = build_generator(args)
    params = GenerationParams(n=1, temperature=0.0, max_tokens=args.max_tokens)
    jobs = []  # (task, source, spec, doc, with_preference)
    for task in ("summarize", "email"):
        specs = load_user_specs(task)
        docs = load_documents(task)
        for source, spec in specs.items():
            for doc in [d for d in docs if d.source == source][: args.docs]:
                for with_pref in (True, False):
                    jobs.append((task, source, spec, doc, with_pref))
    prompt_list = [
        prompts.task_prompt(task, doc.text, spec.description if with_pref else None, context_chars=args.context_chars)
        for task, _, spec, doc, with_pref in jobs
    ]
    # Warm up on one prompt (first-call kernel set-up), then time one prompt alone: what one request waits.
    gen.generate(prompt_list[:1], GenerationParams(n=1, temperature=0.0, max_tokens=8))
    t = time.perf_counter()
    single = gen.generate(prompt_list[:1], params)[0]
    single_tps = single.completion_tokens / (time.perf_counter() - t)
    outputs, tokens, seconds = [], 0, 0.0
    from tqdm import tqdm

    for start in tqdm(range(0, len(prompt_list), args.batch), desc=args.label, unit="batch"):
        chunk = prompt_list[start : start + args.batch]
        t = time.perf_counter()
        outs = gen.generate(chunk, params)
        seconds += time.perf_counter() - t
        tokens += sum(o.completion_tokens for o in outs)
        outputs.extend(o.texts[0] for o in outs)
    from redline.agent.generators.loops import cut_loop, loops

    users = {task: RuleUser(load_user_specs(task)) for task in ("summarize", "email")}
    rows = []
    for (task, source, spec, doc, with_pref), draft in zip(jobs, outputs):
        cut = cut_loop(draft)  # what cutting a draft at its first repeated sentence would have shown the user
        checks = {op.kind: bool(op.check(draft)) for op in spec.operations}
        rows.append(
            {
                "task": task,
                "user": f"{task}/{spec.name}",
                "doc": doc.id,
                "preference": with_pref,
                "checks": checks,
                "cost": edit_cost(draft, users[task].feedback(source, doc.text, draft).edited),
                "loops": loops(draft),
                "cut_checks": {op.kind: bool(op.check(cut)) for op in spec.operations} if cut != draft else checks,
                "cut_cost": edit_cost(cut, users[task].feedback(source, doc.text, cut).edited),
                "draft": draft,
            }
        )
    return summarise(args, rows, gen, load_s, tokens, seconds, single_tps)


def _rate(values) -> float | None:
    values = list(values)
    return round(sum(values) / len(values), 3) if values else None


def summarise(args, rows, gen, load_s, tokens, seconds, single_tps) -> dict:
    by_kind, by_user = defaultdict(lambda: {True: [], False: []}), defaultdict(lambda: {True: [], False: []})
    costs = defaultdict(lambda: {True: [], False: []})
    for r in rows:
        for kind, ok in r["checks"].items():
            by_kind[kind][r["preference"]].append(ok)
            by_user[r["user"]][r["preference"]].append(ok)
        costs[r["task"]][r["preference"]].append(r["cost"])
    every = {
        flag: [ok for r in rows if r["preference"] == flag for ok in r["checks"].values()] for flag in (True, False)
    }
    return {
        "label": args.label,
        "model": getattr(gen, "model_name", args.model),
        "generator": args.generator,
        "dtype": args.dtype if args.generator == "transformers" else ("Q4_K_M GGUF" if args.generator ==
                                                                       "llama-server" else "server"),
        "docs_per_user": args.docs,
        "max_tokens": args.max_tokens,
        "context_chars": args.context_chars,
        "batch": args.batch,
        "load_s": round(load_s, 1),
        "tok_s_batched": round(tokens / seconds, 1),
        "tok_s_single": round(single_tps, 1),
        "generation_s": round(seconds, 1),
        "drafts": len(rows),
        "pass_rate": {"with_preference": _rate(every[True]), "without": _rate(every[False])},
        "by_kind": {
            k: {"with_preference": _rate(v[True]), "without": _rate(v[False]), "checks": len(v[True])}
            for k, v in sorted(by_kind.items())
        },
        "by_user": {
            u: {"with_preference": _rate(v[True]), "without": _rate(v[False])} for u, v in sorted(by_user.items())
        },
        "mean_edit_cost": {
            t: {"with_preference": round(statistics.mean(v[True]), 1), "without": round(statistics.mean(v[False]), 1)}
            for t, v in sorted(costs.items())
        },
        "extra_body": args.extra_body,
        "looping_drafts": sum(r["loops"] for r in rows),
        "cut_at_first_repeat": {
            "pass_rate": {
                "with_preference": _rate(ok for r in rows if r["preference"] for ok in r["cut_checks"].values()),
                "without": _rate(ok for r in rows if not r["preference"] for ok in r["cut_checks"].values()),
            },
            "mean_edit_cost": {
                t: {flag: round(statistics.mean(r["cut_cost"] for r in rows if r["task"] == t and r["preference"] == f),
                                1) for flag, f in (("with_preference", True), ("without", False))}
                for t in sorted(costs)
            },
        },
        "machine_load": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "samples": [
            {k: r[k] for k in ("user", "doc", "preference", "checks", "cost", "draft")}
            for r in rows[:: max(1, len(rows) // 12)]
        ],
    }


def write_outputs(runs: dict) -> None:
    lines = [
        "# Instruction following: share of the rule users' checks a draft already passes",
        "",
        "With the user's true description in the prompt (oracle) vs without a preference; "
        "written by `benchmarks/bench_compliance.py`.",
        "",
        "| run | model | precision | checks passed, oracle | without | edit cost summarize, oracle / without "
        "| edit cost email, oracle / without | tok/s one prompt | tok/s batched | load s | looping drafts |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in runs.items():
        c = r["mean_edit_cost"]
        lines.append(
            f"| {label} | {r['model']} | {r['dtype']} | {r['pass_rate']['with_preference']:.2f} | "
            f"{r['pass_rate']['without']:.2f} | {c['summarize']['with_preference']} / {c['summarize']['without']} | "
            f"{c['email']['with_preference']} / {c['email']['without']} | {r['tok_s_single']} | "
            f"{r['tok_s_batched']} (batch {r['batch']}) | {r['load_s']} | {r.get('looping_drafts', '')} |"
        )
    guarded = {label: r for label, r in runs.items() if "cut_at_first_repeat" in r}
    if guarded:
        lines += ["", "Loops: drafts in which a sentence (3+ words) occurs twice or more, and what cutting every "
                  "draft at its first repeated sentence (REDLINE_LOOP_GUARD=cut) changes (as generated → cut):", "",
                  "| run | sampler fields | looping drafts | checks passed, oracle | without | edit cost summarize, "
                  "oracle / without | edit cost email, oracle / without |", "|---|---|---|---|---|---|---|"]
        for label, r in guarded.items():
            cut, c = r["cut_at_first_repeat"], r["mean_edit_cost"]
            cc = cut["mean_edit_cost"]
            lines.append(
                f"| {label} | {r.get('extra_body') or 'none'} | {r['looping_drafts']} of {r['drafts']} | "
                f"{r['pass_rate']['with_preference']:.2f} → {cut['pass_rate']['with_preference']:.2f} | "
                f"{r['pass_rate']['without']:.2f} → {cut['pass_rate']['without']:.2f} | "
                f"{c['summarize']['with_preference']} → {cc['summarize']['with_preference']} / "
                f"{c['summarize']['without']} → {cc['summarize']['without']} | "
                f"{c['email']['with_preference']} → {cc['email']['with_preference']} / "
                f"{c['email']['without']} → {cc['email']['without']} |")
    for key, title in (("by_kind", "Per operation kind"), ("by_user", "Per user")):
        lines += ["", f"{title} (oracle / without):", "", f"| {key[3:]} | " + " | ".join(runs) + " |",
                  "|---|" + "---|" * len(runs)]
        for name in sorted({n for r in runs.values() for n in r[key]}):
            cells = [f"{v['with_preference']:.2f} / {v['without']:.2f}" if (v := r[key].get(name)) else ""
                     for r in runs.values()]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (RESULTS / "bench_compliance.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(runs)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 3.6))
    xs = range(len(labels))
    ax.bar(
        [x - 0.2 for x in xs],
        [runs[k]["pass_rate"]["with_preference"] for k in labels],
        0.4,
        label="preference in prompt",
    )
    ax.bar([x + 0.2 for x in xs], [runs[k]["pass_rate"]["without"] for k in labels], 0.4, label="no preference")
    ax.set_xticks(list(xs), labels, rotation=15, fontsize=8)
    ax.set_ylabel("share of user's checks passed")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Does the generator act on the preference it is given?", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_compliance.png", dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", help="smollm2, qwen2.5-coder-0.5b, or a model folder")
    ap.add_argument(
        "--dtype",
        default="bfloat16",
        choices=["float32", "bfloat16", "int8", "auto"],
        help="transformers precision; int8 = dynamic quantisation of the Linear layers",
    )
    ap.add_argument("--generator", default="transformers", choices=["transformers", "openai", "llama-server"])
    ap.add_argument("--extra-body", help="openai/llama-server: JSON of the server's own sampling fields sent with "
                                         "every request, e.g. '{\"dry_multiplier\": 0.8}'")
    ap.add_argument("--url", default="http://127.0.0.1:8000/v1", help="OpenAI-compatible server (--generator openai)")
    ap.add_argument("--served-model", default=None, help="model name on the server (default: the first it lists)")
    ap.add_argument("--docs", type=int, default=4, help="documents per user")
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--context-chars", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8, help="prompts per generator call")
    ap.add_argument("--models-dir", default=str(REPO / ".redline" / "models"))
    ap.add_argument("--label", default=None, help="name of this run in the results (default: model-precision)")
    args = ap.parse_args()
    args.label = args.label or f"{args.model}-{args.dtype}"
    result = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "bench_compliance.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else {}
    runs[args.label] = result
    path.write_text(json.dumps({"runs": runs}, indent=2, ensure_ascii=False) + "\n")
    write_outputs(runs)
    print(json.dumps({k: v for k, v in result.items() if k not in ("samples", "by_user")}, indent=2))


if __name__ == "__main__":
    main()
