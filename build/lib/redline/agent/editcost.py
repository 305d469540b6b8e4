"""Edit cost: Levenshtein distance between two texts over word tokens.

Tokeniser: a token is a run of word characters (letters, digits, underscore, any script) or a single
character that is neither a word character nor whitespace; so words and each punctuation mark are
separate tokens and whitespace only separates them ("don't!" -> ``don ' t !``). This follows the PRELUDE
protocol's word-level cost (NLTK-style tokens) closely without NLTK's data downloads.
"""

from __future__ import annotations

import re

from rapidfuzz.distance import Levenshtein

__all__ = ["tokenize", "edit_cost", "EditCost"]

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Word and punctuation tokens of ``text``.

    >>> tokenize("Hello, world!")
    ['Hello', ',', 'world', '!']
    """
    return _TOKEN.findall(text)


def edit_cost(draft: str, edited: str) -> int:
    """Token-level Levenshtein distance (insertions, deletions, substitutions all cost 1).

    >>> edit_cost("The cat sat.", "The cat sat on the mat.")
    3
    """
    return Levenshtein.distance(tokenize(draft), tokenize(edited))


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
