"""Evaluation on real edits: writers who edited the same LLM paragraphs (LAMP format).

Files are JSON lists of records with ``instruction``, ``preedit`` (the LLM paragraph) and ``postedit`` (the
writer's edit); one file per writer (``lamp_W3_edits.json`` → writer ``W3``), any number of writers (≥ 2).
Paragraphs are split into folds by a hash of the draft (the same paragraphs are held out for every writer).
On each fold the shared reward (``EditProfileReward``) is fitted on the pooled training pairs of all writers,
each writer's state is replayed from that writer's own training pairs only (in file order), and held-out pairs
are scored, every text as features relative to its draft:

- ``vs_draft``: the writer's postedit ≻ the LLM draft;
- ``vs_other_writer``: the writer's postedit ≻ another writer's postedit of the same paragraph.

Methods, all on the same folds and features: ``single_bt`` (the writer-agnostic edit head alone, one linear
Bradley-Terry head), ``mixture`` (MiCRo's score: the heads mixed by the writer's online weights) and ``routed``
(the default reward: the writer's own ideal point, shrunk towards their routed heads, plus the edit head).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from redline.policies import EditFeatures, EditProfileReward, normalised_entropy

from .tasks import DATA_DIR

__all__ = ["EditRecord", "load_writers", "evaluate_lamp", "format_table", "LAMP_DATA", "COAUTHOR_DATA", "TARGETS"]

LAMP_DATA = DATA_DIR  # the vendored lamp_W*_edits.json (provenance and licence in evals/data/SOURCES.md)
COAUTHOR_DATA = DATA_DIR / "coauthor"  # CoAuthor writers' edits of GPT-3 suggestions, in the same format
METHODS = ("single_bt", "mixture", "routed")
KINDS = ("vs_draft", "vs_other_writer")
TARGETS = {"vs_draft": 0.90, "vs_other_writer": 0.75}  # issue 15: what the routed reward must reach


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
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
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


def _correct(probs) -> tuple[float, int]:
    """(correct count with ties as half, n)."""
    p = np.atleast_1d(np.asarray(probs, dtype=np.float64))
    return float(np.sum(p > 0.5) + 0.5 * np.sum(p == 0.5)), int(p.size)


def evaluate_lamp(writers: dict[str, list[dict]], *, n_heads: int = 4, folds: int = 5, seed: int = 0,
                  encode: Callable[[Sequence[str]], np.ndarray] | None = None, **hyper) -> dict:
    """Cross-validated held-out pairwise accuracies (see the module docstring).

    ``encode`` (texts → vectors) embeds the instructions for the context router (``router=True`` in ``hyper``);
    other keyword arguments are ``EditProfileReward`` hyperparameters. Returns ``{"single_bt": {"vs_draft",
    "vs_other_writer"}, "mixture": {...}, "routed": {...}, "per_writer": {...}, "pairwise": {...}, "routing":
    {...}, "n_pairs", "writers", "setup"}``.
    """
    if folds < 2:
        raise ValueError("folds must be at least 2")
    names = sorted(writers)
    if len(names) < 2:
        raise ValueError(f"need edit files of at least two writers, got {len(names)}")
    records = [EditRecord(w, _key(r["preedit"]), r.get("instruction") or r["preedit"], r["preedit"], r["postedit"])
               for w in names for r in writers[w] if _key(r["postedit"]) != _key(r["preedit"])]
    by_paragraph: dict[str, dict[str, int]] = {}
    for i, rec in enumerate(records):
        by_paragraph.setdefault(rec.paragraph, {})[rec.writer] = i
    features = EditFeatures()
    Z = features.transform([r.edit for r in records], [r.draft for r in records])
    who = [r.writer for r in records]
    contexts = None
    if hyper.get("router") and encode is not None:
        contexts = np.asarray(encode([r.context for r in records]), dtype=np.float64)
    fold_of = np.array([_fold(r.paragraph, folds, seed) for r in records])
    zero = np.zeros(Z.shape[1])

    counts = {m: {w: {t: [0.0, 0] for t in KINDS} for w in names} for m in METHODS}
    pairwise = {w: {o: [0.0, 0] for o in names if o != w} for w in names}
    entropy: dict[str, list[float]] = {w: [] for w in names}
    fold_figures = []
    for f in range(folds):
        train, test = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
        if not len(train) or not len(test):
            continue
        routed = EditProfileReward(n_heads, seed=seed, **hyper).fit(
            Z[train], [who[i] for i in train], None if contexts is None else contexts[train],
            feature_names=features.names)
        mixture = copy.copy(routed).set_params(mode="mixture")
        states = routed.replay_users(Z[train], [who[i] for i in train])
        fold_hits = {t: [0.0, 0] for t in KINDS}
        for w in names:
            entropy[w].append(normalised_entropy(routed.weights(states.get(w))))
        for i in test:
            w, ctx = who[i], None if contexts is None else contexts[i]
            others = [(o, j) for o, j in by_paragraph[records[i].paragraph].items()
                      if o != w and _key(records[j].edit) != _key(records[i].edit)]
            for kind, rejected in (("vs_draft", [(None, zero)]), ("vs_other_writer", [(o, Z[j]) for o, j in others])):
                for other, zb in rejected:
                    probs = {"single_bt": float(_sigmoid((Z[i] - zb) / routed.scale_ @ routed.edit_head_)),
                             "mixture": float(mixture.predict_proba(states.get(w), Z[i], zb, ctx)[0]),
                             "routed": float(routed.predict_proba(states.get(w), Z[i], zb, ctx)[0])}
                    for m, p in probs.items():
                        _add(counts[m][w][kind], p)
                    _add(fold_hits[kind], probs["routed"])
                    if other is not None:
                        _add(pairwise[w][other], probs["routed"])
        fold_figures.append({t: _rate(c) for t, c in fold_hits.items()})

    result: dict = {}
    for m in METHODS:
        result[m] = {t: _rate([sum(counts[m][w][t][0] for w in names), sum(counts[m][w][t][1] for w in names)])
                     for t in KINDS}
    result["writers"] = len(names)
    result["per_writer"] = {w: {m: {t: _rate(counts[m][w][t]) for t in KINDS} for m in METHODS} for w in names}
    result["n_pairs"] = {t: sum(counts["routed"][w][t][1] for w in names) for t in KINDS}
    result["pairwise"] = {w: {o: _rate(c) for o, c in row.items()} for w, row in pairwise.items()}
    result["routing"] = {"mean_entropy": {w: round(float(np.mean(e)), 4) if e else None for w, e in entropy.items()},
                         "folds": len(fold_figures)}
    result["per_fold_routed"] = fold_figures
    result["targets"] = {t: {"target": v, "routed": result["routed"][t],
                             "met": result["routed"][t] is not None and result["routed"][t] >= v}
                         for t, v in TARGETS.items()}
    result["setup"] = {"folds": folds, "seed": seed, "records": len(records), "paragraphs": len(by_paragraph),
                       "features": list(features.names), "router_contexts": contexts is not None,
                       **EditProfileReward(n_heads, seed=seed, **hyper).get_params()}
    return result


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def _add(cell: list, p: float) -> None:
    hits, n = _correct(p)
    cell[0] += hits
    cell[1] += n


def _rate(cell) -> float | None:
    return round(cell[0] / cell[1], 4) if cell[1] else None


def format_table(result: dict) -> str:
    """A plain-text table of the headline figures."""
    n = result.get("n_pairs", {})
    setup = result["setup"]
    lines = [f"held-out pairwise accuracy ({result['writers']} writers, {setup['folds']}-fold by paragraph, "
             f"K={setup['n_heads']}, router {'on' if setup['router_contexts'] else 'off'})",
             f"{'method':<44}{'vs draft':>10}{'vs other writer':>18}",
             f"{'':<44}{'(n=' + str(n.get('vs_draft')) + ')':>10}{'(n=' + str(n.get('vs_other_writer')) + ')':>18}"]
    label = {"single_bt": "single BT (edit head, writer-agnostic)", "mixture": "mixture (MiCRo heads, writer weights)",
             "routed": "routed (writer's ideal point + edit head)"}

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for m in METHODS:
        lines.append(f"{label[m]:<44}{fmt(result[m]['vs_draft']):>10}{fmt(result[m]['vs_other_writer']):>18}")
    lines.append("")
    lines.append("per writer (vs draft / vs other writer):")
    for w, rows in result["per_writer"].items():
        lines.append(f"  {w}: " + ", ".join(f"{m} {fmt(rows[m]['vs_draft'])}/{fmt(rows[m]['vs_other_writer'])}"
                                            for m in METHODS))
    lines.append("routing entropy (1 = no lean): " + ", ".join(
        f"{w} {fmt(e)}" for w, e in result["routing"]["mean_entropy"].items()))
    if result["writers"] > 2:
        lines.append("routed, P(own ≻ other) by other writer:")
        for w, row in result["pairwise"].items():
            lines.append(f"  {w}: " + ", ".join(f"{o} {fmt(v)}" for o, v in row.items()))
    lines.append("targets (routed): " + ", ".join(
        f"{t} {fmt(c['routed'])} ≥ {c['target']:.2f} {'met' if c['met'] else 'MISSED'}"
        for t, c in result["targets"].items()))
    return "\n".join(lines)
