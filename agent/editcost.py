"""Edit cost: Levenshtein distance between two texts over word tokens.

Tokeniser (``redline.text.TOKEN``): a token is a run of word characters (letters, digits, underscore, any
script) or a single character that is neither a word character nor whitespace; so words and each punctuation
mark are separate tokens and whitespace only separates them ("don't!" -> ``don ' t !``). This follows the
PRELUDE protocol's word-level cost (NLTK-style tokens) closely without NLTK's data downloads.
"""

from __future__ import annotations

import re

from rapidfuzz.distance import Levenshtein

from redline.text import TOKEN
from redline.text import tokens as tokenize  # the public name in redline.agent

__all__ = ["tokenize", "edit_cost", "word_diff", "EditCost"]


def edit_cost(draft: str, edited: str) -> int:
    """Token-level Levenshtein distance (insertions, deletions, substitutions all cost 1).

    >>> edit_cost("The cat sat.", "The cat sat on the mat.")
    3
    """
    return Levenshtein.distance(tokenize(draft), tokenize(edited))


def word_diff(draft: str, edited: str) -> list[tuple[str, str]]:
    """The edit as the cost counts it: ``(op, text)`` runs, op ``equal``, ``delete`` (draft only) or ``insert``
    (edited only), from the token-level Levenshtein alignment. Each run carries the whitespace before its
    tokens, so the runs other than ``delete`` join into ``edited`` exactly (and those other than ``insert``
    into ``draft`` up to the whitespace of unchanged runs).

    >>> word_diff("We utilize the tool.", "We use the tool.")
    [('equal', 'We'), ('delete', ' utilize'), ('insert', ' use'), ('equal', ' the tool.')]
    """
    a, b = list(TOKEN.finditer(draft)), list(TOKEN.finditer(edited))

    def run(text: str, tokens: list[re.Match], i: int, j: int) -> str:
        return text[tokens[i - 1].end() if i else 0:tokens[j - 1].end()]  # from the end of the token before

    runs: list[tuple[str, str]] = []
    for op in Levenshtein.opcodes([m.group() for m in a], [m.group() for m in b]):
        if op.tag in ("delete", "replace"):
            runs.append(("delete", run(draft, a, op.src_start, op.src_end)))
        if op.tag in ("insert", "replace", "equal"):
            runs.append(("insert" if op.tag != "equal" else "equal", run(edited, b, op.dest_start, op.dest_end)))
    tail = edited[b[-1].end():] if b else edited
    if tail:
        runs.append(("equal", tail))
    merged: list[tuple[str, str]] = []
    for op, text in runs:
        if merged and merged[-1][0] == op:
            merged[-1] = (op, merged[-1][1] + text)
        elif text:
            merged.append((op, text))
    return merged


class EditCost:
    """Edit cost with the δ threshold: a cost at or below ``delta`` counts as no edit."""

    def __init__(self, delta: int = 0):
        if delta < 0:
            raise ValueError("delta must be >= 0")
        self.delta = delta

    def __call__(self, draft: str, edited: str) -> int:
        return edit_cost(draft, edited)

    def is_edit(self, cost: int) -> bool:
        return cost > self.delta
