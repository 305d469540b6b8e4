"""Selection regret: does the user's reward pick, among candidates that differ, the one the user would edit least?

Users are the rule users of both tasks (``evals/data/users.yaml``: each edits the documents of one source, as in
``redline eval``). For ``--docs`` documents of each user the generator writes what the agent writes for best-of-n:
the greedy target draft (temperature 0, prompted with the target preference: the user's true description, what
CIPHER aims at, or none with ``--target none``) and ``n − 1`` alternatives at the candidate temperature, both ways
the agent can make them: (a) ``samples`` of the task prompt, scored on the form features only, and (b)
``revisions`` of the greedy draft (one more batched call), scored on all features. A candidate's cost is the
word-level edit distance from it to the simulated user's edit of it (what the user would still change).

Leave one document out: the shared reward is fitted on every user's pairs from the other documents (the user's
edit of the greedy draft ≻ the greedy draft: what the agent stores), the held-out document's user's state is
replayed from that user's own other pairs, and each rule picks among the held-out candidates, relative to the
greedy draft: the routed reward (the default), the mixture score, the writer-agnostic edit head, a random pick,
the greedy draft. Reported per mode with standard errors over documents: how often each picks a lowest-cost
candidate, mean cost, regret over the best candidate, cost against the greedy draft, how often the candidates
differ, how often the routed pick is not the greedy draft.

    .venv/bin/python benchmarks/selection_regret.py --generator-model qwen2.5-coder-0.5b --docs 6

Writes benchmarks/results/selection_regret.json. Generations are cached (seeded) under .redline/bench-cache.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from redline.agent import GenerationParams, Settings, edit_cost, prompts  # noqa: E402
from redline.agent.generators import load_generator  # noqa: E402
from redline.agent.generators.cache import CachingGenerator  # noqa: E402
from redline.evals.tasks import load_documents  # noqa: E402
from redline.evals.users import RuleUser, load_user_specs  # noqa: E402
from redline.policies import EditFeatures, EditProfileReward  # noqa: E402

MODES = ("samples", "revisions")
RULES = ("routed", "mixture", "edit_head", "random", "greedy")


def draft_candidates(gen, task: str, docs: list, preference, args) -> list[dict]:
    """Per document: the greedy draft, n − 1 samples and n − 1 revisions, each kind in ONE batched call."""
    timings = {}
    task_prompts = [prompts.task_prompt(task, d.text, preference(d)) for d in docs]
    clock = time.perf_counter()
    greedy = [g.texts[0] for g in gen.generate(task_prompts, GenerationParams(
        n=1, temperature=0.0, max_tokens=args.max_tokens))]
    timings["greedy"] = time.perf_counter() - clock
    alternatives = GenerationParams(n=args.n - 1, temperature=args.temperature, max_tokens=args.max_tokens,
                                    seed=args.seed)
    clock = time.perf_counter()
    samples = [g.texts for g in gen.generate(task_prompts, alternatives)]
    timings["samples"] = time.perf_counter() - clock
    clock = time.perf_counter()
    revisions = [g.texts for g in gen.generate([prompts.revision_prompt(g, preference(d))
                                                for g, d in zip(greedy, docs)], alternatives)]
    timings["revisions"] = time.perf_counter() - clock
    return [{"greedy": g, "samples": s, "revisions": r, "seconds": timings}
            for g, s, r in zip(greedy, samples, revisions)]


def mean_se(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None
    return {"mean": round(float(v.mean()), 4), "se": None if se is None else round(se, 4), "n": int(len(v))}


def evaluate(rows: list[dict], args) -> dict:
    """Leave one document out, per mode (see the module docstring)."""
    features = EditFeatures()
    users = [r["user"] for r in rows]
    train_z = np.stack([r["pair_features"] for r in rows])
    out = {}
    for mode in MODES:
        mask = EditFeatures.form_mask if mode == "samples" else None
        per_doc = {rule: {"hit": [], "cost": []} for rule in RULES}
        differ, routed_differs, gain = [], [], []
        for held, row in enumerate(rows):
            keep = [i for i in range(len(rows)) if i != held]
            model = EditProfileReward(args.heads, seed=args.seed).fit(train_z[keep], [users[i] for i in keep],
                                                                      feature_names=features.names)
            mixture = copy.copy(model).set_params(mode="mixture")
            state = model.replay(train_z[[i for i in keep if users[i] == row["user"]]])
            texts = [row["greedy"], *row[mode]]
            cost = np.array([row["costs"]["greedy"], *row["costs"][mode]], dtype=np.float64)
            z = features.transform(texts, row["greedy"])
            keep_mask = np.ones(z.shape[1]) if mask is None else mask.astype(np.float64)
            picks = {"routed": int(np.argmax(model.score(state, z, mask=mask))),
                     "mixture": int(np.argmax(mixture.score(state, z, mask=mask))),
                     "edit_head": int(np.argmax((z / model.scale_ * keep_mask) @ model.edit_head_)),
                     "greedy": 0}
            best = cost.min()
            for rule, pick in picks.items():
                per_doc[rule]["hit"].append(float(cost[pick] == best))
                per_doc[rule]["cost"].append(cost[pick])
            per_doc["random"]["hit"].append(float(np.mean(cost == best)))
            per_doc["random"]["cost"].append(float(cost.mean()))
            differ.append(float(len({" ".join(t.split()) for t in texts}) > 1))
            routed_differs.append(float(" ".join(texts[picks["routed"]].split()) != " ".join(texts[0].split())))
            gain.append(cost[picks["routed"]] - cost[0])
        best_cost = [min(row["costs"]["greedy"], *row["costs"][mode]) for row in rows]
        out[mode] = {
            "picks_lowest_cost": {rule: mean_se(v["hit"]) for rule, v in per_doc.items()},
            "mean_cost": {**{rule: mean_se(v["cost"]) for rule, v in per_doc.items()}, "best": mean_se(best_cost)},
            "mean_regret": {rule: mean_se(np.array(v["cost"]) - best_cost) for rule, v in per_doc.items()},
            "routed_cost_minus_greedy": mean_se(gain),
            "candidates_differ": mean_se(differ),
            "routed_differs_from_greedy": mean_se(routed_differs),
        }
    return out


def format_table(out: dict) -> str:
    """Per mode and rule: picks a lowest-cost candidate, mean cost, regret (mean ± standard error)."""
    def cell(c):
        return f"{c['mean']:.3f} ± {c['se']:.3f}" if c["se"] is not None else f"{c['mean']:.3f}"

    lines = [f"{out['setup']['documents']} documents of {out['setup']['users']} users, n = {out['setup']['n']}, "
             f"generator {out['setup']['generator']}"]
    for mode in MODES:
        r = out[mode]
        lines += [f"\n{mode}: candidates differ {cell(r['candidates_differ'])}; routed pick is not the greedy draft "
                  f"{cell(r['routed_differs_from_greedy'])}; routed cost − greedy cost "
                  f"{cell(r['routed_cost_minus_greedy'])}",
                  f"{'rule':<10}{'picks a lowest-cost':>22}{'mean cost':>20}{'regret':>20}"]
        for rule in RULES:
            lines.append(f"{rule:<10}{cell(r['picks_lowest_cost'][rule]):>22}{cell(r['mean_cost'][rule]):>20}"
                         f"{cell(r['mean_regret'][rule]):>20}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generator-model", help="a model short name or a local transformers folder "
                                              "[default: the configured default]")
    ap.add_argument("--tasks", default="summarize,email")
    ap.add_argument("--docs", type=int, default=6, help="documents per user")
    ap.add_argument("--sources", help="only the users of these sources (comma-separated) [default: all]")
    ap.add_argument("--n", type=int, default=4, help="candidates per document (the greedy draft and n - 1 more)")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--temperature", type=float, default=0.8, help="the alternatives' (candidate) temperature")
    ap.add_argument("--target", choices=("oracle", "none"), default="oracle")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "selection_regret.json")
    args = ap.parse_args(argv)

    settings = Settings(data_dir=REPO / ".redline", generator_model=args.generator_model)
    gen = CachingGenerator(load_generator(settings), REPO / ".redline" / "bench-cache" / "selection_regret.sqlite")
    features = EditFeatures()
    rows, seconds = [], {"greedy": 0.0, "samples": 0.0, "revisions": 0.0}
    clock = time.perf_counter()
    for task in args.tasks.split(","):
        specs = load_user_specs(task)
        simulated = RuleUser(specs)
        documents = load_documents(task)
        for source, spec in specs.items():
            if args.sources and source not in args.sources.split(","):
                continue
            docs = [d for d in documents if d.source == source][:args.docs]

            def preference(_doc, spec=spec):
                return spec.description if args.target == "oracle" else None

            drafted = draft_candidates(gen, task, docs, preference, args)
            for kind, s in drafted[0]["seconds"].items():
                seconds[kind] += s
            for doc, cands in zip(docs, drafted):
                def cost(text, doc=doc, source=source):
                    return edit_cost(text, simulated.feedback(source, doc.text, text).edited)

                edited = simulated.feedback(source, doc.text, cands["greedy"]).edited
                rows.append({"user": f"{task}:{source}", "doc": doc.id, "greedy": cands["greedy"],
                             "samples": cands["samples"], "revisions": cands["revisions"],
                             "pair_features": features.transform([edited], cands["greedy"])[0],
                             "costs": {"greedy": cost(cands["greedy"]),
                                       "samples": [cost(t) for t in cands["samples"]],
                                       "revisions": [cost(t) for t in cands["revisions"]]}})
            print(f"{task}:{source}: {len(docs)} documents drafted ({time.perf_counter() - clock:.0f} s)",
                  file=sys.stderr)
    results = evaluate(rows, args)
    out = {"setup": {**{k: v for k, v in vars(args).items() if k != "out"}, "generator": gen.model_name,
                     "users": len({r["user"] for r in rows}), "documents": len(rows),
                     "protocol": "leave one document out", "cached_calls": gen.hits,
                     "generation_seconds": {k: round(v, 1) for k, v in seconds.items()},
                     "load_average": [round(x, 2) for x in os.getloadavg()]},
           **results,
           "candidate_costs": [{"user": r["user"], "doc": r["doc"], **r["costs"]} for r in rows]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(format_table(out))
    return out


if __name__ == "__main__":
    main()
