"""Degenerate repetition in a draft: a small model decoding greedily can write the same sentence again and again
until ``max_tokens`` ("The parents are also concerned ... ." ×4). Each loop costs the user an edit and the machine
the tokens.

A draft *loops* when one sentence (of at least ``MIN_WORDS`` words, compared without case, spacing and end
punctuation) occurs twice or more. ``first_repeat`` finds where, ``cut_loop`` keeps the text before it, and
``LoopGuard`` watches a text as it streams, so a back-end can stop decoding at the first repeated sentence.
"""

from __future__ import annotations

import re

from redline.text import MARKER, sentence_pieces

__all__ = ["MIN_WORDS", "loops", "first_repeat", "cut_loop", "stutters", "LoopGuard"]

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
        at = 0
        for i, piece in enumerate(sentence_pieces(body)):  # pieces are the body's own text, in order
            at = body.index(piece, at)
            yield (line.start() if i == 0 else line.start() + body_at + at), piece
            at += len(piece)


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


# A loop inside one sentence, which never ends so no sentence repeats: "The movie about the movie about the movie
# about ..." (a redline summary of 2026-12-06, 56 words the user deleted). A phrase of 2 to 6 words four times in a
# row; twice or three times can be rhetoric ("again and again and again").
STUTTER_TIMES = 4
_STUTTER = re.compile(rf"\b(\w+(?:\W+\w+){{1,5}}?)(?:\W+\1\b){{{STUTTER_TIMES - 1},}}", re.IGNORECASE)


def stutters(text: str) -> bool:
    """Whether ``text`` writes one phrase of 2-6 words ``STUTTER_TIMES`` times or more in a row."""
    return _STUTTER.search(text) is not None


def cut_loop(text: str) -> str:
    """``text`` up to (not including) its first repeated sentence; unchanged when nothing repeats."""
    at = first_repeat(text)
    return text if at is None else text[:at].rstrip()


class LoopGuard:
    """Watch a text as it decodes, and show only what is not (yet) a loop.

    ``feed(delta)`` returns the part of the text that is safe to show now: a sentence that so far reads like the
    start of an earlier one is held back until it differs from it; once a complete sentence repeats an earlier one,
    ``looping`` turns true, nothing more is shown, and the decoding should stop. ``finish()`` returns what was
    held back when the text ended without a loop; ``text`` is the text to keep (up to the first repeat).

    >>> guard = LoopGuard()
    >>> [guard.feed(p) for p in ["It rains today. ", "It is cold. ", "It rains", " today. ", "It"]]
    ['It rains today. ', 'It is cold. ', '', '', '']
    >>> guard.looping, guard.text
    (True, 'It rains today. It is cold.')
    """

    def __init__(self):
        self._text = ""
        self._shown = 0
        self.looping = False

    def feed(self, delta: str) -> str:
        if self.looping:
            return ""
        self._text += delta
        found = list(_sentences(self._text))
        keys: set[str] = set()
        visible = len(self._text)
        for offset, sentence in found[:-1]:  # complete sentences: the last one may still grow
            key = _key(sentence)
            if key in keys:
                self.looping, visible = True, offset
                break
            if key:
                keys.add(key)
        else:
            if found and keys:
                offset, sentence = found[-1]
                partial = _NORM.sub(" ", sentence.lower()).strip()
                if partial and any(k.startswith(partial) for k in keys):
                    visible = offset  # reads like an earlier sentence so far: wait and see
        shown, self._shown = self._text[self._shown:max(visible, self._shown)], max(visible, self._shown)
        return shown

    def finish(self) -> str:
        """What is left to show once the text ended (nothing after a loop)."""
        if self.looping:
            return ""
        shown, self._shown = self._text[self._shown:], len(self._text)
        return shown

    @property
    def text(self) -> str:
        return cut_loop(self._text).rstrip() if self.looping else self._text
