"""Evaluation on real edits: professional writers who edited the same LLM paragraphs (LAMP).

Files are JSON lists of records with ``instruction``, ``preedit`` (the LLM paragraph) and ``postedit``
(the writer's edit); one file per writer (``lamp_W3_edits.json`` → writer ``W3``). Paragraphs are split
into folds (the same paragraphs are held out for every writer); on each fold the heads are trained on
the pooled pairs (postedit ≻ preedit) of all writers' training paragraphs, and scored on held-out pairs:

- ``vs_draft``: the writer's postedit ≻ the LLM draft;
- ``vs_other_writer``: the writer's postedit ≻ another writer's postedit of the same paragraph.

For (a) single Bradley-Terry, (b) the mixture with its context router only, (c) the mixture with each
writer's online routing state (Hedge over the writer's training pairs, in order).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from redline.policies import RewardFeatures, combine, describe_state, train_reward_model
from redline.policies.routing import initial_state

from .tasks import DATA_DIR

__all__ = ["EditRecord", "load_writers", "evaluate_lamp", "format_table", "LAMP_DATA"]

LAMP_DATA = DATA_DIR  # the vendored lamp_W*_edits.json (provenance and licence in evals/data/SOURCES.md)
METHODS = ("single_bt", "mixture", "routed")
KINDS = ("vs_draft", "vs_other_writer")


@dataclass(frozen=True)
class EditRecord:
    """One writer's edit of one LLM paragraph."""

    writer: str
    paragraph: str  # the draft, whitespace-normalised: the same paragraph for every writer
    context: str  # the instruction the paragraph was written for (the draft when there is none)
    draft: str
    edit: str


def _writer_name(path: Path) -> str:
    name = re.sub(r"^lamp_", "", path.stem)
    return re.sub(r"_edits$", "", name) or path.stem


def load_writers(folder: str | Path = LAMP_DATA) -> dict[str, list[dict]]:
    """``{writer: [records]}`` from every ``*.json`` file in ``folder``; raises ``ValueError`` when the
    folder has no usable file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"no such data folder: {folder}")
    writers: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from exc
        if not isinstance(rows, list):
            continue
        rows = [r for r in rows if isinstance(r, dict) and isinstance(r.get("preedit"), str)
                and isinstance(r.get("postedit"), str) and r["preedit"].strip() and r["postedit"].strip()]
        if rows:
            writers[_writer_name(path)] = rows
    if not writers:
        raise ValueError(f"no edit files (JSON lists with preedit/postedit) in {folder}")
    return writers


def _key(text: str) -> str:
    return " ".join(text.split())


def _fold(key: str, folds: int, seed: int) -> int:
    return int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest(), 16) % folds


def _accuracy(probs: Sequence[float]) -> tuple[float, int]:
    """(correct count with ties as half, n)."""
    p = np.asarray(probs, dtype=np.float64)
    return float(np.sum(p > 0.5) + 0.5 * np.sum(p == 0.5)), int(p.size)


def evaluate_lamp(writers: dict[str, list[dict]], encode: Callable[[Sequence[str]], np.ndarray], *,
                  n_heads: int = 4, folds: int = 5, seed: int = 0, tau: float = 1.0,
                  features: RewardFeatures | None = None, user_groups: bool = True, **hyper) -> dict:
    """Cross-validated held-out pairwise accuracies (see the module docstring).

    Returns ``{"single_bt": {"vs_draft", "vs_other_writer"}, "mixture": {...}, "routed": {...},
    "writers": n, "per_writer": {...}, "routing": {...}, "setup": {...}}``.
    """
    if folds < 2:
        raise ValueError("folds must be at least 2")
    features = features or RewardFeatures()
    names = sorted(writers)
    records = [EditRecord(w, _key(r["preedit"]), r.get("instruction") or r["preedit"], r["preedit"], r["postedit"])
               for w in names for r in writers[w] if _key(r["postedit"]) != _key(r["preedit"])]
    by_paragraph: dict[str, dict[str, EditRecord]] = {}
    for rec in records:
        by_paragraph.setdefault(rec.paragraph, {})[rec.writer] = rec
    texts = list(dict.fromkeys(t for rec in records for t in (rec.context, rec.draft, rec.edit)))
    vectors = dict(zip(texts, encode(texts)))

    def lookup(batch: Sequence[str]) -> np.ndarray:
        return np.stack([vectors[t] for t in batch])

    def phi(ctx_texts, cand_texts):
        return features.transform(lookup(ctx_texts), lookup(cand_texts), list(cand_texts))

    counts = {m: {t: [0.0, 0] for t in KINDS} for m in METHODS}
    per_writer = {w: {m: {t: [0.0, 0] for t in KINDS} for m in METHODS} for w in names}
    states_by_fold = []
    for f in range(folds):
        train = [rec for rec in records if _fold(rec.paragraph, folds, seed) != f]
        test = [rec for rec in records if _fold(rec.paragraph, folds, seed) == f]
        if not train or not test:
            continue
        pairs = [{"context": r.context, "chosen": r.edit, "rejected": r.draft, "user": r.writer} for r in train]
        single = train_reward_model(pairs, lookup, n_heads=1, seed=seed, tau=tau, features=features,
                                    group_by_user=False, **hyper).model
        mixture = train_reward_model(pairs, lookup, n_heads=n_heads, seed=seed, tau=tau, features=features,
                                     group_by_user=user_groups, **hyper)
        states = {w: mixture.routing.get(w, initial_state(n_heads)) for w in names}
        states_by_fold.append(states)
        for rec in test:
            tests = {"vs_draft": [rec.draft],
                     "vs_other_writer": [o.edit for ow, o in by_paragraph[rec.paragraph].items()
                                         if ow != rec.writer and _key(o.edit) != _key(rec.edit)]}
            for kind, rejected in tests.items():
                if not rejected:
                    continue
                ctx_t = np.stack([vectors[rec.context]] * len(rejected))
                a = phi([rec.context] * len(rejected), [rec.edit] * len(rejected))
                b = phi([rec.context] * len(rejected), rejected)
                routed_w = combine(mixture.model.route(ctx_t), states[rec.writer]["weights"])
                probs = {"single_bt": single.predict_proba(ctx_t, a, b),
                         "mixture": mixture.model.predict_proba(ctx_t, a, b),
                         "routed": mixture.model.predict_proba(ctx_t, a, b, weights=routed_w)}
                for m, p in probs.items():
                    c, n = _accuracy(p)
                    for table in (counts[m][kind], per_writer[rec.writer][m][kind]):
                        table[0] += c
                        table[1] += n

    def rate(cell):
        return round(cell[0] / cell[1], 4) if cell[1] else None

    result = {m: {t: rate(counts[m][t]) for t in counts[m]} for m in METHODS}
    result["writers"] = len(names)
    result["per_writer"] = {w: {m: {t: rate(per_writer[w][m][t]) for t in per_writer[w][m]} for m in METHODS}
                            for w in names}
    result["n_pairs"] = {t: counts["single_bt"][t][1] for t in KINDS}
    tops = [[int(np.argmax(s[w]["weights"])) for w in names] for s in states_by_fold]
    result["routing"] = {
        "per_fold": [{w: describe_state(s[w]) for w in names} for s in states_by_fold],
        "folds_with_distinct_top_heads": sum(len(set(t)) == len(t) for t in tops),
        "folds": len(states_by_fold),
        "mean_entropy": {w: round(float(np.mean([describe_state(s[w])["entropy"] for s in states_by_fold])), 4)
                         for w in names},
    }
    result["setup"] = {"n_heads": n_heads, "user_groups": user_groups, "folds": folds, "seed": seed, "tau": tau,
                       "records": len(records), "paragraphs": len(by_paragraph),
                       "features": "style+embedding+cos" if features.use_embedding else "style+cos"}
    return result


def format_table(result: dict) -> str:
    """A plain-text table of the headline figures."""
    n = result.get("n_pairs", {})
    lines = [f"held-out pairwise accuracy ({result['writers']} writers, {result['setup']['folds']}-fold by paragraph, "
             f"K={result['setup']['n_heads']})",
             f"{'method':<34}{'vs draft':>10}{'vs other writer':>18}",
             f"{'':<34}{'(n=' + str(n.get('vs_draft')) + ')':>10}{'(n=' + str(n.get('vs_other_writer')) + ')':>18}"]
    label = {"single_bt": "(a) single BT", "mixture": "(b) mixture, context router",
             "routed": "(c) mixture, per-writer routing"}

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for m in METHODS:
        lines.append(f"{label[m]:<34}{fmt(result[m]['vs_draft']):>10}{fmt(result[m]['vs_other_writer']):>18}")
    lines.append("")
    for w, rows in result["per_writer"].items():
        lines.append(f"{w}: " + ", ".join(f"{m} {fmt(rows[m]['vs_draft'])}/{fmt(rows[m]['vs_other_writer'])}"
                                          for m in METHODS))
    routing = result["routing"]
    lines.append(f"routing: writers' top heads differ in {routing['folds_with_distinct_top_heads']}/"
                 f"{routing['folds']} folds; mean normalised entropy "
                 + ", ".join(f"{w} {e:.2f}" for w, e in routing["mean_entropy"].items()))
    if routing["per_fold"]:
        first = routing["per_fold"][0]
        lines.append("fold 0 weights: " + "; ".join(f"{w} {s['weights']}" for w, s in first.items()))
    return "\n".join(lines)
