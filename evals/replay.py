"""Real-edit replay: writers' own edits of LLM-written drafts (LAMP: three professional writers on the same
literary paragraphs; CoAuthor: crowd writers editing the GPT-3 suggestions they accepted).

For each writer: the agent revises (task ``revise``) each of the writer's first ``learn_edits`` drafts and
learns from the writer's own postedit as feedback; then, for each held-out draft, it revises the draft and
the cost is the word edit distance from its revision to that writer's postedit. References: the unrevised
draft itself, and revising with no learning. For methods with edit rules (``redline``, ``rules-only``) each
held-out revision is also scored as generated, before the rules changed it, so the report says how often a
rule fired on real drafts and what it did to the distance (``redline`` vs ``redline-no-rules`` is rules on vs off).
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from redline.agent import edit_cost

from .backends import LocalBackend
from .lamp import LAMP_DATA, load_writers
from .methods import Method, parse_method
from .paired import compare
from .report import figure, grouped_bars, table

__all__ = ["run_replay", "write_replay_report", "format_rules_effect", "format_vs_unrevised"]


def run_replay(methods: list[Method], out: Path, *, embedder, generator, learn_edits: int = 10,
               held_out: int | None = None, max_tokens: int | None = None, settings: dict | None = None,
               progress=None, data: str | Path = LAMP_DATA, workers: int = 1) -> dict:
    """Per writer (every LAMP-format file in ``data``, default the shipped LAMP edits) and method: mean
    held-out cost, plus the two references. Every (writer, method) stream runs in its own thread, up to
    ``workers`` at once, so the generator serves them together."""
    out = Path(out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    methods = [parse_method("no-learning")] + [m for m in methods if m.name != "no-learning"]
    results: dict = {"writers": {}, "skipped": {}, "learn_edits": learn_edits, "rules": {}, "vs_unrevised": {}}
    jobs = []
    for writer, items in load_writers(data).items():
        train, test = items[:learn_edits], items[learn_edits:]
        if held_out:
            test = test[:held_out]
        unrevised = [edit_cost(x["preedit"], x["postedit"]) for x in test]
        results["writers"][writer] = {"unrevised": float(np.mean(unrevised))}
        results["vs_unrevised"][writer] = {}
        for method in methods:
            if method.oracle:
                results["skipped"][method.name] = "no true description exists"
                continue
            tick = progress(f"{writer} {method.name}", len(test) + (len(train) if method.name != "no-learning"
                                                                    else 0)) if progress else (lambda: None)
            jobs.append((writer, method, train, test, unrevised, tick))

    def one(job) -> None:
        writer, method, train, test, unrevised, tick = job
        data_dir = out / "stores" / f"{writer}-{method.name}"
        shutil.rmtree(data_dir, ignore_errors=True)
        backend = LocalBackend(method, data_dir, embedder=embedder, generator=generator, settings=settings)
        started = time.perf_counter()
        user = f"lamp-{writer}"
        try:
            if method.name != "no-learning":
                for x in train:
                    d = backend.generate(user, x["preedit"], "revise", max_tokens=max_tokens, temperature=0.0)
                    backend.feedback(d.interaction_id, x["postedit"])
                    tick()
            costs, fired = [], []
            with (out / "logs" / f"{writer}-{method.name}.jsonl").open("w") as log:
                for x in test:
                    d = backend.generate(user, x["preedit"], "revise", max_tokens=max_tokens, temperature=0.0)
                    c = edit_cost(d.text, x["postedit"])
                    costs.append(c)
                    entry = {"id": x["id"], "cost": c, "preference": d.preference, "revision": d.text,
                             "applied_rules": d.applied_rules}
                    if d.raw_text is not None:  # a rule fired: what it did to the distance
                        entry.update(revision_before_rules=d.raw_text,
                                     cost_before_rules=edit_cost(d.raw_text, x["postedit"]))
                        fired.append(entry)
                    log.write(json.dumps(entry, ensure_ascii=False) + "\n")
                    tick()
            if method.rules:
                results["rules"].setdefault(writer, {})[method.name] = _rules_effect(backend.rules(user), fired,
                                                                                     len(test))
        finally:
            backend.close()
        row = results["writers"][writer]
        row[method.name] = float(np.mean(costs))
        row[f"{method.name}_wall_s"] = round(time.perf_counter() - started, 1)
        results["vs_unrevised"][writer][method.name] = compare(costs, unrevised)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(one, job) for job in jobs]:
            future.result()
    for writer, row in results["writers"].items():  # the columns in the methods' order, whatever finished first
        results["writers"][writer] = {k: row[k] for k in ["unrevised", *(f for m in methods if m.name in row
                                                                          for f in (m.name, f"{m.name}_wall_s"))]}
    return results


def _rules_effect(rules: list[dict], fired: list[dict], held_out: int) -> dict:
    """The writer's rules after learning, and on the held-out drafts: how often one fired, the distance to the
    writer's postedit with vs without the rules where one did, and which rules fired."""
    counts: dict[str, int] = {}
    for entry in fired:
        for r in entry["applied_rules"]:
            counts[r["description"]] = counts.get(r["description"], 0) + 1
    return {"learned": len(rules), "active": [f"{r['description']} ({r['support']}/{r['contradictions']})"
                                              for r in rules if r["active"]],
            "held_out": held_out, "fired": len(fired),
            "cost_with_rules": sum(e["cost"] for e in fired), "cost_without_rules": sum(e["cost_before_rules"]
                                                                                        for e in fired),
            "better": sum(e["cost"] < e["cost_before_rules"] for e in fired),
            "worse": sum(e["cost"] > e["cost_before_rules"] for e in fired), "rules_fired": counts}


def format_rules_effect(results: dict) -> str:
    """Per writer and method with edit rules: what the rules did on the held-out drafts."""
    rows = []
    for writer, by_method in results.get("rules", {}).items():
        for name, r in by_method.items():
            change = r["cost_with_rules"] - r["cost_without_rules"]
            fired = "; ".join(f"{d} ×{n}" for d, n in r["rules_fired"].items()) or "none"
            rows.append(f"| {writer} | {name} | {r['learned']} | {len(r['active'])} | {r['fired']} of {r['held_out']} "
                        f"| {r['cost_without_rules']} → {r['cost_with_rules']} ({change:+d}) | {r['better']} / "
                        f"{r['worse']} | {fired} |")
    return table(
        "Edit rules on the held-out drafts: the distance to the writer's postedit of the revisions a rule changed, "
        "before → after the rules (summed words; negative change = closer to what the writer kept), and on how "
        "many of them the rules helped / hurt.",
        ["writer", "method", "rules learned", "active", "fired on", "distance where fired", "better / worse",
         "rules that fired"], rows)


def format_vs_unrevised(results: dict) -> str:
    """Per writer and method: is the revision closer to the writer's postedit than the unrevised draft? The mean
    difference per draft with its 95% interval, and on how many drafts it was closer / further / equal."""
    rows = []
    for writer, by_method in (results.get("vs_unrevised") or {}).items():
        for name, c in by_method.items():
            ci = f"[{c['low']:+.1f}, {c['high']:+.1f}]" if c["low"] is not None else "n/a"
            verdict = ("closer" if c["high"] is not None and c["high"] < 0 else
                       "further" if c["low"] is not None and c["low"] > 0 else "undecided")
            rows.append(f"| {writer} | {name} | {c['mean']:+.1f} {ci} | {c['cheaper']} / {c['dearer']} / "
                        f"{c['equal']} | {verdict} |")
    return table(
        "Revision minus unrevised draft, in words of distance to the writer's postedit per held-out draft (negative: "
        "the revision is closer to what the writer kept; 95% interval over the drafts; closer at 95% when the whole "
        "interval is below 0).", ["writer", "method", "mean [95% CI]", "closer / further / equal", "at 95%"], rows)


def write_replay_report(results: dict, out: Path, command: str = "") -> str:
    out = Path(out)
    (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    names = [k for k in next(iter(results["writers"].values())) if not k.endswith("_wall_s")]
    lines = [f"# Real-edit replay (writers {', '.join(results['writers'])})", "", f"Command: `{command or 'n/a'}`",
             "", f"Learned from each writer's first {results['learn_edits']} edits; cost = word edit distance to the "
             "writer's own postedit on held-out drafts (mean per draft; lower is better).", "",
             "| writer | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for writer, row in results["writers"].items():
        lines.append(f"| {writer} | " + " | ".join(f"{row[n]:.1f}" for n in names) + " |")
    versus = format_vs_unrevised(results)
    if versus:
        lines += ["", versus]
    for name, why in results.get("skipped", {}).items():
        lines.append(f"\n{name}: not run ({why}).")
    rules = format_rules_effect(results)
    if rules:
        lines += ["", "## Edit rules", "", rules]
        for writer, by_method in results["rules"].items():
            for name, r in by_method.items():
                lines.append(f"\n{writer} {name} active rules: " + ("; ".join(r["active"]) or "none"))
    _plot(results, names, out)
    lines += ["", "![edit cost per writer](replay_cost.png)"]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def _plot(results: dict, names: list[str], out: Path) -> None:
    """``replay_cost.png``: one group of bars per writer, one bar per reference or method."""
    writers = list(results["writers"])
    with figure(out / "replay_cost.png", grid="y") as ax:
        grouped_bars(ax, writers, {name: [results["writers"][w][name] for w in writers] for name in names})
        ax.set(ylabel="edit distance to the writer's postedit (words, mean)",
               title=f"Real-edit replay after {results['learn_edits']} learned edits (lower is better)")
