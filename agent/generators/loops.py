"""Degenerate repetition in a draft: a small model decoding greedily can write the same sentence again and again
until ``max_tokens`` ("The parents are also concerned ... ." ×4). Each loop costs the user an edit and the machine
the tokens.

A draft *loops* when one sentence (of at least ``MIN_WORDS`` words, compared without case, spacing and end
punctuation) occurs twice or more. ``first_repeat`` finds where, ``cut_loop`` keeps the text before it, and
``LoopGuard`` watches a text as it streams, so a back-end can stop decoding at the first repeated sentence.
"""

from __future__ import annotations

import re

from ..text import MARKER, SENT_END

__all__ = ["MIN_WORDS", "loops", "first_repeat", "cut_loop", "LoopGuard"]

MIN_WORDS = 3  # "Thank you." twice is a style, not a loop
_NORM = re.compile(r"[^\w]+")


def _key(sentence: str) -> str | None:
    key = _NORM.sub(" ", sentence.lower()).strip()
    return key if len(key.split()) >= MIN_WORDS else None


def _sentences(text: str):
    """``(offset, sentence)`` of every sentence of ``text``, list markers removed; a line's first sentence starts
    at the line (with its marker), so cutting there removes the whole list item."""
    for line in re.finditer(r"[^\n]+", text):
        marker = MARKER.match(line.group())
        body_at = marker.end() if marker else 0
        body = line.group()[body_at:]
        bounds = [0] + [m.end() for m in SENT_END.finditer(body)] + [len(body)]
        for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
            if body[a:b].strip():
                yield (line.start() if i == 0 else line.start() + body_at + a), body[a:b].strip()


def loops(text: str) -> bool:
    """Whether a sentence of ``text`` occurs twice or more."""
    return first_repeat(text) is not None


def first_repeat(text: str) -> int | None:
    """The character offset where the first repeated sentence of ``text`` starts again (None: no loop)."""
    seen: set[str] = set()
    for offset, sentence in _sentences(text):
        key = _key(sentence)
        if key in seen:
            return offset
        if key:
            seen.add(key)
    return None


def cut_loop(text: str) -> str:
    """``text`` up to (not including) its first repeated sentence; unchanged when nothing repeats."""
    at = first_repeat(text)
    return text if at is None else text[:at].rstrip()


class LoopGuard:
    """Feed a text's deltas as they decode; ``looping`` turns true once a complete sentence repeats an earlier one,
    and ``text`` is then everything before that repetition.

    >>> guard = LoopGuard()
    >>> for piece in ["It rains today. ", "It is cold. ", "It rains today. ", "It"]:
    ...     _ = guard.feed(piece)
    >>> guard.looping, guard.text
    (True, 'It rains today. It is cold.')
    """

    def __init__(self):
        self._text = ""
        self.looping = False

    def feed(self, delta: str) -> bool:
        """Add a delta; returns ``looping``."""
        if not self.looping:
            self._text += delta
            # Only complete sentences count: the text up to its last sentence end followed by a space.
            done = max(self._text.rfind(". "), self._text.rfind("! "), self._text.rfind("? "), self._text.rfind("\n"))
            self.looping = done > 0 and first_repeat(self._text[:done + 1]) is not None
        return self.looping

    @property
    def text(self) -> str:
        return cut_loop(self._text) if self.looping else self._text
