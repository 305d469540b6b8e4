"""Features of a text RELATIVE to a reference text: how a revision changed its draft.

z(y; ref) has one number per name in ``NAMES``, all 0 when y == ref (the reference sits at the origin), so
"what this user does to a draft" is a point in one space for every draft:

- *form* features, each g(y) − g(ref) for a per-text statistic g, meaningful for ANY two texts: log words, log
  sentences, commas, mean word length, type/token ratio, mean sentence length and its spread, short and long
  sentences, long words, ; and :, dashes, quotes, ? and !, -ly words and hedges, first person, and/but/or (the
  prose statistics that tell professional writers apart), and lines, list items, hashtags and emojis (the
  layout a summary or an email gets);
- *edit* features from a word alignment of y against ref (``difflib``), meaningful only when y is a revision of
  ref: share of ref kept, share of y taken from ref, changed spans, mean inserted and deleted span length,
  share of spans that replace, share of y inserted, beginning and end of ref kept, sequence similarity.

Words, sentences, list items and emoji are read as everywhere in redline (``redline.text``). No model and no
embedding: about 1 ms for a pair of 200-word paragraphs. Features are computed once per stored pair (the store
keeps them with the pair, stamped with ``FEATURES_VERSION``), so retraining reads numbers.
"""

from __future__ import annotations

import difflib
import math
from typing import Sequence

import numpy as np

from redline import text as tx

__all__ = ["EditFeatures", "FORM_NAMES", "EDIT_NAMES", "NAMES", "FEATURES_VERSION", "text_stats"]

# Bump when a feature's definition changes: stored rows of an older version are recomputed from their texts.
# 2: words, sentences, list items and emoji as redline.text reads them (any script; lines and abbreviations).
FEATURES_VERSION = 2

_HEDGES = {"perhaps", "maybe", "might", "somewhat", "quite", "rather", "very", "really", "just", "seemed", "seem"}
_FIRST = {"i", "me", "my", "mine", "we", "us", "our", "ours"}

FORM_NAMES = ("log_len", "log_sent", "log_commas", "d_wordlen", "d_ttr", "log_msl", "d_sdsl", "d_short", "d_long",
              "d_longw", "d_semis", "d_dashes", "d_quotes", "d_qex", "d_adv", "d_first", "d_andw",
              "log_lines", "d_list", "d_hashtags", "d_emoji")
EDIT_NAMES = ("kept_share", "from_ref_share", "n_spans", "log_ins_span", "log_del_span", "repl_share", "ins_share",
              "head_kept", "tail_kept", "seq_sim")
NAMES = FORM_NAMES + EDIT_NAMES


def text_stats(text: str) -> np.ndarray:
    """The per-text statistics g, in the order of ``FORM_NAMES`` (a form feature is g(y) − g(ref))."""
    text = text or ""
    words = tx.bare_words(text)
    n_words = max(len(words), 1)
    sentences = tx.sentences(text) or [""]
    # Plain Python over a handful of sentence lengths: numpy's per-call overhead was a fifth of a learner's time.
    lengths = [len(tx.words(s)) for s in sentences]
    lower = [w.lower() for w in words]
    lines = [line for line in text.splitlines() if line.strip()]
    mean_len = sum(lengths) / len(lengths)
    spread = math.sqrt(sum((n - mean_len) ** 2 for n in lengths) / len(lengths))

    def per10(count: int) -> float:
        return count / n_words * 10.0

    return np.array([
        math.log(n_words), math.log(len(sentences)), math.log(per10(text.count(",")) + 0.5),
        sum(len(w) for w in words) / n_words, len(set(lower)) / n_words, math.log(max(mean_len, 1.0)),
        spread / max(mean_len, 1.0), sum(n <= 8 for n in lengths) / len(lengths),
        sum(n >= 25 for n in lengths) / len(lengths),
        sum(1 for w in words if len(w) >= 8) / n_words, per10(text.count(";") + text.count(":")),
        per10(text.count("—") + text.count("–") + text.count(" - ")), per10(sum(text.count(q) for q in "\"“”")),
        per10(text.count("?") + text.count("!")), per10(sum(1 for w in lower if w.endswith("ly") or w in _HEDGES)),
        per10(sum(1 for w in lower if w in _FIRST)), per10(sum(1 for w in lower if w in ("and", "but", "or"))),
        math.log(max(len(lines), 1)), sum(1 for line in lines if tx.LIST_ITEM.match(line)) / max(len(lines), 1),
        per10(len(tx.HASHTAG.findall(text))), per10(len(tx.EMOJI.findall(text))),
    ], dtype=np.float64)


def _alignment(y: str, ref: str) -> np.ndarray:
    """The edit features of ``y`` against ``ref`` (over their words, lower-cased), in the order of EDIT_NAMES."""
    ty = [t.lower() for t in tx.words(y or "")]
    tr = [t.lower() for t in tx.words(ref or "")]
    matcher = difflib.SequenceMatcher(None, tr, ty, autojunk=False)
    kept = np.zeros(len(tr), dtype=bool)
    spans = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            kept[i1:i2] = True
        else:
            spans.append((tag, i2 - i1, j2 - j1))
    inserted = [n for _, _, n in spans if n > 0]
    deleted = [d for _, d, _ in spans if d > 0]
    n_ref, n_y = max(len(tr), 1), max(len(ty), 1)
    fifth = max(1, len(tr) // 5)
    head = float(kept[:fifth].mean()) if len(tr) else 1.0
    tail = float(kept[-fifth:].mean()) if len(tr) else 1.0
    return np.array([
        kept.sum() / n_ref - 1.0, kept.sum() / n_y - 1.0, len(spans) / n_ref * 10.0,
        math.log1p(float(np.mean(inserted))) if inserted else 0.0,
        math.log1p(float(np.mean(deleted))) if deleted else 0.0,
        sum(1 for tag, _, _ in spans if tag == "replace") / max(len(spans), 1), sum(inserted) / n_y,
        head - 1.0, tail - 1.0, matcher.ratio() - 1.0,
    ], dtype=np.float64)


class EditFeatures:
    """z(y; ref) for texts against one reference text, or one reference per text.

    >>> EditFeatures().transform(["A short edit."], "A short edit.").tolist() == [[0.0] * len(NAMES)]
    True
    """

    names = NAMES
    version = FEATURES_VERSION
    #: True for the form features: the ones that mean something when a text is NOT a revision of the reference.
    form_mask = np.array([name in FORM_NAMES for name in NAMES])

    def transform(self, texts: Sequence[str], reference: str | Sequence[str]) -> np.ndarray:
        """Array (len(texts), len(NAMES)), float64; ``reference`` is one text for all or one per text."""
        if isinstance(texts, str):
            raise TypeError("transform takes a sequence of texts, not one string")
        refs = [reference] * len(texts) if isinstance(reference, str) else list(reference)
        if len(refs) != len(texts):
            raise ValueError(f"{len(refs)} references for {len(texts)} texts")
        out = np.zeros((len(texts), len(NAMES)))
        stats: dict[str, np.ndarray] = {}
        n_form = len(FORM_NAMES)
        for i, (y, ref) in enumerate(zip(texts, refs)):
            if y == ref:
                continue
            for t in (y, ref):
                if t not in stats:
                    stats[t] = text_stats(t)
            out[i, :n_form] = stats[y] - stats[ref]
            out[i, n_form:] = _alignment(y, ref)
        return out
