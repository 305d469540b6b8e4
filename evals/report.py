"""Turn harness results into ``summary.json``, ``report.md`` and PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .paired import DEFAULT_CLAIMS, WINDOW, judge, paired, windowed

__all__ = ["summarize", "write_report", "format_table", "format_selection", "format_rules", "format_paired",
           "format_claims", "format_generator", "grouped_bars", "figure"]

BASELINES = ("no-learning", "cipher-5")  # every method is compared round by round with these


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return (float(arr.mean()), float(arr.std())) if len(arr) else (float("nan"), float("nan"))


def _selection(streams: list) -> dict | None:
    """For methods that select among candidates: rounds per selection kind, and per seed the first round
    (1-based, as in the plots) whose draft was picked by the reward; None for greedy methods."""
    kinds = [k for s in streams for k in getattr(s, "selections", []) or []]
    if not any(k not in (None, "greedy") for k in kinds):
        return None
    counts: dict[str, float] = {}
    for k in kinds:
        key = k or "unknown"
        counts[key] = counts.get(key, 0) + 1
    first = {}
    for s in streams:
        rounds = [t + 1 for t, k in enumerate(s.selections) if k == "reward"]
        first[str(s.seed)] = rounds[0] if rounds else None
    differs = [d for s in streams for d, k in zip(getattr(s, "differs", []) or [], s.selections)
               if k == "reward" and d is not None]
    return {"rounds_per_seed": {k: round(v / len(streams), 2) for k, v in sorted(counts.items())},
            "first_reward_round": first,
            "differs_from_greedy": round(float(np.mean(differs)), 4) if differs else None,
            "price": _price(streams)}


def _price(streams: list, window: int = WINDOW) -> dict | None:
    """What choosing among candidates cost the user against keeping the greedy draft, round by round (the chosen
    draft's cost minus the greedy draft's, as the simulated user would have edited it; rounds with a choice only):
    ``{rounds, total, per_round, cheaper, dearer, windows: {"1-10": total, ...}, taken, expected}``; None without
    such rounds (a method without a choice, or an LLM user). ``taken`` counts the rounds whose chosen draft is not
    the greedy one, ``expected`` is the reward's mean confidence in them (its chance that the user prefers its pick):
    a calibrated reward's picks are cheaper in about that share of the taken rounds that differ in cost."""
    diffs = [(t, c - g) for s in streams for t, (c, g) in enumerate(zip(s.costs, getattr(s, "costs_if_greedy", [])
                                                                      or [])) if g is not None]
    if not diffs:
        return None
    windows: dict[str, int] = {}
    for t, d in diffs:
        start = t // window * window
        key = f"{start + 1}-{start + window}"
        windows[key] = windows.get(key, 0) + d
    values = [d for _, d in diffs]
    taken = [conf for s in streams
             for differs, conf in zip(getattr(s, "differs", []) or [], getattr(s, "confidences", []) or [])
             if differs and conf is not None]
    return {"rounds": len(values), "total": int(sum(values)), "per_round": round(float(np.mean(values)), 3),
            "cheaper": sum(d < 0 for d in values), "dearer": sum(d > 0 for d in values),
            "windows": dict(sorted(windows.items(), key=lambda kv: int(kv[0].split("-")[0]))),
            "taken": len(taken), "expected": round(float(np.mean(taken)), 3) if taken else None}


def _rules(streams: list) -> dict | None:
    """For methods with edit rules: per seed, the rules the user ended with (learned: any; active), the rounds
    whose draft a rule changed, the rule applications, and which rules were applied how often; None otherwise."""
    if all(getattr(s, "rules", None) is None for s in streams):
        return None
    per_seed = {}
    for s in streams:
        rules = s.rules or []
        applied: dict[str, int] = {}
        for round_rules in s.applied_rules:
            for r in round_rules:
                applied[r["description"]] = applied.get(r["description"], 0) + 1
        per_seed[str(s.seed)] = {
            "learned": len(rules), "active": sum(bool(r.get("active")) for r in rules),
            "rounds_applied": sum(bool(r) for r in s.applied_rules),
            "applications": sum(len(r) for r in s.applied_rules),
            "applied": dict(sorted(applied.items(), key=lambda kv: -kv[1])),
            "active_rules": [r["description"] for r in rules if r.get("active")]}

    def mean(key: str) -> float:
        return round(float(np.mean([v[key] for v in per_seed.values()])), 2)

    return {"learned_mean": mean("learned"), "active_mean": mean("active"),
            "rounds_applied_mean": mean("rounds_applied"), "applications_mean": mean("applications"),
            "per_seed": per_seed}


def _elapsed(streams: list) -> float | None:
    """Seconds from the method's first round's start to its last round's end (its streams ran side by side with
    the other methods'); None for logs without start times."""
    spans = [span for s in streams for span in getattr(s, "spans", []) or []]
    return round(max(e for _, e in spans) - min(b for b, _ in spans), 2) if spans else None


def _paired(streams: list) -> list[dict]:
    """Each method against each baseline the run has, round by round: overall and per 10-round window."""
    names = list(dict.fromkeys(s.method for s in streams))
    return [{"x": x, "y": y, **paired(streams, x, y), "windows": windowed(streams, x, y)}
            for y in BASELINES if y in names for x in names if x != y]


def summarize(results: dict, claims=DEFAULT_CLAIMS) -> dict:
    """Per method: cumulative cost mean/std over seeds (population std), per-source cost, preference
    accuracy (share of rounds whose preference is closest to the true one; None when the method infers none),
    agent tokens in/out per seed, wall time per stream and for the method (``elapsed_s``). For the run: paired
    per-round comparisons with the baselines (95% intervals, per window too), the ``claims`` judged, and the
    generator's throughput when the results carry it (``results["generator"]``)."""
    by_method: dict[str, list] = {}
    for s in results["streams"]:
        by_method.setdefault(s.method, []).append(s)
    methods = {}
    for name, streams in by_method.items():
        cum = [sum(s.costs) for s in streams]
        mean, std = _mean_std(cum)
        flags = [c for s in streams for c in s.correct if c is not None]
        sources = sorted({src for s in streams for src in s.sources})
        per_source = {src: float(np.mean([sum(c for c, x in zip(s.costs, s.sources) if x == src) for s in streams]))
                      for src in sources}
        curve = np.mean([np.cumsum(s.costs) for s in streams], axis=0)
        curve_std = np.std([np.cumsum(s.costs) for s in streams], axis=0)
        inferred = [k for s in streams for k in getattr(s, "inferred_by", []) or [] if k]
        methods[name] = {
            "inferred_by": {k: inferred.count(k) for k in sorted(set(inferred))},
            "cumulative_cost_mean": round(mean, 2), "cumulative_cost_std": round(std, 2),
            "cumulative_cost_per_seed": cum,
            "preference_accuracy": round(float(np.mean(flags)), 4) if flags else None,
            "tokens_in": round(float(np.mean([s.tokens_in for s in streams])), 1),
            "tokens_out": round(float(np.mean([s.tokens_out for s in streams])), 1),
            "user_tokens": round(float(np.mean([s.user_tokens for s in streams])), 1),
            "wall_time_s": round(float(np.mean([s.wall_time_s for s in streams])), 2),
            "elapsed_s": _elapsed(streams),
            "zero_cost_rounds": round(float(np.mean([sum(c == 0 for c in s.costs) for s in streams])), 2),
            "looping_drafts": sum(sum(getattr(s, "loops", []) or []) for s in streams),
            "drafted_again": dict(sorted(Counter(why for s in streams for why in getattr(s, "drafted_again", [])
                                                 if why).items())),
            "cost_per_source": {k: round(v, 2) for k, v in per_source.items()},
            "cumulative_curve_mean": [round(float(x), 2) for x in curve],
            "cumulative_curve_std": [round(float(x), 2) for x in curve_std],
            "rounds": len(streams[0].costs), "seeds": [s.seed for s in streams],
            "selection": _selection(streams),
            "rules": _rules(streams),
        }
    streams = results["streams"]
    return {"config": results.get("config", {}), "methods": methods, "skipped": results.get("skipped", {}),
            "paired": _paired(streams), "claims": judge(streams, claims), "generator": results.get("generator"),
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpus": __import__("os").cpu_count(), "load_average": list(__import__("os").getloadavg())},
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def _drafted_again(reasons: dict[str, int]) -> str:
    return ", ".join(f"{n} ({why})" for why, n in reasons.items()) or "0"


def format_table(summary: dict) -> str:
    """A Markdown table, one row per method."""
    rows = ["| method | cumulative cost (mean ± std) | zero-cost rounds | looping drafts | drafted again "
            "| preference accuracy | tokens in / out | wall time (s): method / stream |",
            "|---|---|---|---|---|---|---|---|"]
    for name, m in summary["methods"].items():
        acc = "n/a" if m["preference_accuracy"] is None else f"{m['preference_accuracy']:.2f}"
        drafts = m["rounds"] * len(m["seeds"])
        elapsed = "n/a" if m.get("elapsed_s") is None else f"{m['elapsed_s']:,.0f}"
        rows.append(f"| {name} | {m['cumulative_cost_mean']:,.0f} ± {m['cumulative_cost_std']:,.0f} | "
                    f"{m['zero_cost_rounds']:g} | {m['looping_drafts']} of {drafts} | "
                    f"{_drafted_again(m.get('drafted_again') or {})} | {acc} | "
                    f"{m['tokens_in']:,.0f} / {m['tokens_out']:,.0f} | {elapsed} / {m['wall_time_s']:,.0f} |")
    for name, why in summary.get("skipped", {}).items():
        rows.append(f"| {name} | not available: {why} | | | | | | |")
    return "\n".join(rows)


def format_selection(summary: dict) -> str:
    """For each method that selects among candidates (redline*): from which round the reward picked the draft."""
    rows = []
    every = (summary.get("config") or {}).get("retrain_every")
    remote = (summary.get("config") or {}).get("target")
    for name, m in summary["methods"].items():
        sel = m.get("selection")
        if not sel:
            continue
        firsts = sel["first_reward_round"]
        n_rounds = m["rounds"]
        when = "; ".join(f"seed {seed}: " + (f"round {r} of {n_rounds}" if r else f"never in {n_rounds} rounds")
                         for seed, r in firsts.items())
        counts = ", ".join(f"{k} {v:g}" for k, v in sel["rounds_per_seed"].items())
        differs = sel.get("differs_from_greedy")
        price = sel.get("price")
        priced = "n/a" if not price else (
            f"{price['total']:+d} ({price['cheaper']} cheaper, {price['dearer']} dearer; "
            + ", ".join(f"rounds {w}: {v:+d}" for w, v in price["windows"].items()) + ")"
            + (f"; the reward expected {price['expected']:.2f}" if price.get("expected") is not None else ""))
        rows.append(f"| {name} | {when} | {counts} | {'n/a' if differs is None else f'{differs:.2f}'} | {priced} |")
    schedule = ("the server's own schedule (--target)" if remote else
                f"retrained after every {every} new preference pairs" if every else "the settings' schedule")
    return table(
        f"Selection (reward heads {schedule}): `reward` = the user's routed reward picked the draft among the "
        "candidates; `cold-start` = no heads or no routing state yet, so the agent drafted from the target "
        "preference only (as greedy); `chosen ≠ greedy` = share of reward-selected rounds whose draft is not the "
        "greedy target draft; price = the words the user edited in the chosen drafts minus what they would have "
        "edited in the greedy drafts, over the rounds with a choice (all seeds; rule users only); the reward "
        "expected = its mean confidence that the user prefers its pick, over the rounds it replaced the greedy draft "
        "(calibrated, its picks are cheaper in that share of those rounds that differ in cost).",
        ["method", "reward-driven selection from", "rounds per seed by selection", "chosen ≠ greedy",
         "price of the choice (words)"], rows)


def table(caption: str, columns: list[str], rows: list[str]) -> str:
    """``caption``, a blank line and a markdown table of ``columns`` over ``rows`` (each already a ``| … |`` line);
    "" when there are no rows."""
    if not rows:
        return ""
    return "\n".join([caption, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *rows])


def format_rules(summary: dict) -> str:
    """For each method with edit rules: per stream, the rules learned and active at the end, and the rounds
    whose draft a rule changed (with the rules applied most often)."""
    rows = []
    for name, m in summary["methods"].items():
        for seed, r in ((m.get("rules") or {}).get("per_seed") or {}).items():
            top = "; ".join(f"{d} ×{n}" for d, n in list(r["applied"].items())[:3]) or "none"
            rows.append(f"| {name} | {seed} | {r['learned']} | {r['active']} | {r['rounds_applied']} of {m['rounds']} "
                        f"| {r['applications']} | {top} |")
    return table(
        "Edit rules per stream: learned = rules the user had at the end (mined and kept), active = applied where "
        "no neighbouring context contradicts them; rounds = rounds whose draft a rule changed before the user saw "
        "it.", ["method", "seed", "rules learned", "active at the end", "rounds with a rule applied", "applications",
                "most applied"], rows)


def _interval(p: dict) -> str:
    if p["low"] is None:
        return f"{p['mean']:+.1f} (one round)"
    return f"{p['mean']:+.1f} [{p['low']:+.1f}, {p['high']:+.1f}]"


def format_paired(summary: dict) -> str:
    """Each method minus each baseline per round (mean and 95% interval, rounds cheaper/dearer/equal, cost ratio),
    then per 10-round window for the redline methods against cipher-5 and every method against no-learning."""
    pairs = summary.get("paired") or []
    if not pairs:
        return ""
    rows = ["| x − y | rounds | mean per round [95% CI] | cheaper / dearer / equal | cost ratio x / y |",
            "|---|---|---|---|---|"]
    rows += [f"| {p['x']} − {p['y']} | {p['n']} | {_interval(p)} | {p['cheaper']} / {p['dearer']} / {p['equal']} "
             f"| {p['ratio'] if p['ratio'] is not None else 'n/a'} |" for p in pairs]
    shown = [p for p in pairs if (p["y"] == "cipher-5" and p["x"].startswith("redline")) or p["y"] == "no-learning"]
    windows = sorted({w["rounds"] for p in shown for w in p["windows"]}, key=lambda r: int(r.split("-")[0]))
    if len(windows) > 1:
        rows += ["", "Per window (mean per round [95% CI], cost ratio):", "",
                 "| x − y | " + " | ".join(f"rounds {w}" for w in windows) + " |", "|---" * (len(windows) + 1) + "|"]
        for p in shown:
            cells = {w["rounds"]: f"{_interval(w)}, {w['ratio'] if w['ratio'] is not None else 'n/a'}×"
                     for w in p["windows"]}
            rows.append(f"| {p['x']} − {p['y']} | " + " | ".join(cells.get(w, "") for w in windows) + " |")
    return "\n".join(rows)


def format_claims(summary: dict) -> str:
    """One line per claim: whether it holds at 95% (the interval of the paired differences), with the figures."""
    lines = []
    for c in summary.get("claims") or []:
        st = c["stats"]
        line = f"- **{c['verdict']}**: {c['claim']} — {c['x']} − {c['ratio']:g}·{c['y']} = {_interval(st)} words per " \
               f"round over {st['n']} rounds (cost ratio {st['ratio']})"
        if c.get("windows"):
            line += "; windows: " + ", ".join(f"{w['rounds']} {_interval(w)}" for w in c["windows"])
        lines.append(line)
    return "\n".join(lines)


def format_generator(summary: dict) -> str:
    g = summary.get("generator")
    if not g or not g.get("calls"):
        return ""
    return (f"Generator: {g['calls']:,} calls ({g['prompts']:,} prompts) produced {g['completion_tokens']:,} tokens "
            f"(cache hits not counted) in {g['seconds']:,.0f} s: {g['tokens_per_second']} tok/s for the run, "
            f"{g['tokens_per_call_second']} tok/s per call, {g['in_flight']} calls in flight on average. Load "
            f"average at the end: {', '.join(f'{v:.1f}' for v in summary['machine'].get('load_average') or [])}.")


def grouped_bars(ax, groups: list[str], series: dict[str, list[float]], *, rotation: float = 0) -> None:
    """One group of bars per entry of ``groups``, one bar (and legend entry) per series."""
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(np.arange(len(groups)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(groups)) + width * (len(series) - 1) / 2, groups, rotation=rotation)


@contextmanager
def figure(path: Path, *, grid: str = "both") -> Iterator[Any]:
    """The axes of one report plot: drawn on inside the block, then given a legend and a light ``grid``
    (both, x or y) and written to ``path`` as PNG (matplotlib, Agg back-end)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        yield ax
        ax.legend(fontsize=8)
        ax.grid(axis=grid, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def _plots(summary: dict, out: Path) -> list[str]:
    methods = summary["methods"]
    task = summary["config"].get("task", "")
    with figure(out / "cumulative_cost.png") as ax:
        for name, m in methods.items():
            mean, std = np.asarray(m["cumulative_curve_mean"]), np.asarray(m["cumulative_curve_std"])
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, label=name)
            ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        ax.set(xlabel="round", ylabel="cumulative edit cost (words)", title=f"Cumulative edit cost — {task}")
    sources = sorted({s for m in methods.values() for s in m["cost_per_source"]})
    with figure(out / "cost_per_source.png", grid="y") as ax:
        grouped_bars(ax, sources, {name: [m["cost_per_source"].get(s, 0) for s in sources]
                                   for name, m in methods.items()}, rotation=15)
        ax.set(ylabel="edit cost (words, mean over seeds)", title=f"Edit cost per source — {task}")
    return ["cumulative_cost.png", "cost_per_source.png"]


def write_report(results: dict, out: Path | str, claims=DEFAULT_CLAIMS) -> dict:
    """Write ``summary.json``, ``report.md`` and the PNG plots into ``out``; returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(results, claims)
    plots = _plots(summary, out) if summary["methods"] else []
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    cfg = summary["config"]
    specs = results.get("specs") or {}
    lines = [f"# Evaluation: {cfg.get('task')} ({cfg.get('user_model')} user)", "",
             f"Command: `{cfg.get('command') or 'n/a'}`", "",
             *([f"Judged together from {len(cfg['runs'])} runs:", "",
                *(f"- `{r['out']}` ({', '.join(r['methods'])}"
                  + (f", judged as {', '.join(m + '-' + r['tag'] for m in r['methods'])}" if r.get("tag") else "")
                  + f"; seeds {r['seeds']}): `{r['command'] or 'n/a'}`" for r in cfg["runs"]), ""]
              if cfg.get("runs") else []),
             f"Rounds: {cfg.get('rounds_completed', cfg.get('rounds'))}"
             + (f" (of {cfg.get('rounds')} requested; the run was stopped early and every method is cut to the "
                "rounds all completed)" if cfg.get('rounds_completed', cfg.get('rounds')) != cfg.get('rounds') else "")
             + f", seeds: {cfg.get('seeds')}, finished {summary['finished']} on "
             f"{summary['machine']['platform']} ({summary['machine']['cpus']} CPUs).", "",
             format_table(summary), "",
             "Cumulative cost: word-level edit distance between draft and the user's edit, summed over rounds "
             "(mean ± population std over seeds). Preference accuracy: share of rounds whose preference is "
             "closest (MiniLM cosine) to the true user's description among the task's users; n/a for methods "
             "that infer none. Looping drafts: drafts shown to the user in which a sentence (of 3+ words) occurs "
             "twice or more, over all seeds. Drafted again: greedy drafts written for the preference that held "
             "nothing of the document (frame lines only, the preference written back, one phrase over and over, "
             "under 3 of its content words) and were drafted again without it, over all seeds. "
             "Tokens: the agent's generator tokens per seed (user tokens excluded). "
             "Wall time: from the method's first round to its last (its streams ran beside the other methods'), and "
             "the mean time of one stream's rounds.", ""]
    generator = format_generator(summary)
    if generator:
        lines += [generator, ""]
    claims = format_claims(summary)
    if claims:
        lines += ["## Claims at 95%", "", "Each claim 'x ≤ r·y' holds when the 95% interval of the paired per-round "
                  "differences x − r·y lies at or below 0, fails when it lies above 0, and is undecided when it "
                  "contains 0 (Student's t over the rounds of every seed; see evals/paired.py).", "", claims, ""]
    comparisons = format_paired(summary)
    if comparisons:
        lines += ["## Paired comparisons (per round, same document, same seed)", "", comparisons, ""]
    selection = format_selection(summary)
    if selection:
        lines += ["## Selection", "", selection, ""]
    rules = format_rules(summary)
    if rules:
        lines += ["## Edit rules", "", rules, ""]
    inference = [(name, m["inferred_by"]) for name, m in summary["methods"].items() if m.get("inferred_by")]
    if inference:
        lines += ["## Preference inference", "", "Preferences learned from edits: how many were the generator's own "
                  "answer (llm) and how many the evidence redline measured in the edit, used when the answer was "
                  "not a usable preference (evidence).", "",
                  "| method | llm | evidence | llm share |", "|---|---|---|---|"]
        for name, counts in inference:
            llm, evidence = counts.get("llm", 0), counts.get("evidence", 0)
            lines.append(f"| {name} | {llm} | {evidence} | {llm / max(1, llm + evidence):.2f} |")
        lines.append("")
    lines += [f"![{p}]({p})" for p in plots]
    if specs:
        lines += ["", "## Users (latent preferences)", "", "| source | description (given to the oracle) |",
                  "|---|---|"]
        lines += [f"| {s} | {spec.description} |" for s, spec in specs.items()]
    lines += ["", "## Cost per source", "", "| method | " + " | ".join(
        sorted({s for m in summary["methods"].values() for s in m["cost_per_source"]})) + " |"]
    srcs = sorted({s for m in summary["methods"].values() for s in m["cost_per_source"]})
    lines.append("|---" * (len(srcs) + 1) + "|")
    for name, m in summary["methods"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m['cost_per_source'].get(s, 0):,.0f}" for s in srcs) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return summary
