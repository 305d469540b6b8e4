"""How redline reads a text: its frame (greeting/heading lines on top, sign-off below) around a body, the
body's sentences and words, where a sentence can be split, and clean-up after an edit.

The edit rules (``agent/rules.py``) and the simulated users of the evaluation (``evals/ops.py``) both read texts
this way, so a user's fix and the rule learned from it see the same sentences and frame lines.
"""

from __future__ import annotations

import re

from rapidfuzz import fuzz

SENT_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9#\-*])")
MARKER = re.compile(r"^\s*(?:[-*•]\s+|\d+[.)]\s+|[QA]:\s*)")
BULLET = re.compile(r"^\s*([-*•])\s+")
NUMBER = re.compile(r"^\s*(\d+)[.)]\s+")
GREETING = re.compile(r"^(hi|hey|hello|dear|greetings|good (morning|afternoon|evening))\b", re.I)
CLOSING = re.compile(r"^(best|regards|kind regards|warm regards|best regards|sincerely|yours|thanks|thank you|"
                     r"many thanks|cheers|all the best|take care|talk soon)\b[^.?]*[,.!]?$", re.I)
# A greeting at the start of a body sentence: "Hi Sam, I hope ..." (the name is at most 4 words).
INLINE_GREETING = re.compile(r"^(?:hi|hey|hello|dear|greetings)\b(?:\s+[\w.'-]+){0,4}\s*[,!:]\s+", re.I)
# Word tokens with their spans: contractions stay one token ("I'm"), punctuation marks are tokens.
TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


def is_head(line: str) -> bool:
    s = line.strip()
    return (s.startswith("#") or s.upper().startswith("TL;DR")
            or (bool(GREETING.match(s)) and len(s.split()) <= 8 and s[-1:] in ",:!"))


def is_closing(tail: list[str]) -> bool:
    return bool(tail) and any(CLOSING.match(line.strip()) for line in tail)


def split_frame(text: str, *, give_back: bool = True) -> tuple[list[str], str, list[str]]:
    """``(head_lines, body, tail_lines)``: greeting/heading/TL;DR lines (or a short first paragraph of one
    line) on top; a sign-off (or a short last paragraph of one line) below. With ``give_back`` a short
    paragraph taken for a frame line is given back when nothing else is left for the body (a body cut to one
    short sentence stays the body); the simulated users read texts without it."""
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    head: list[str] = []
    guessed_head = False
    while paragraphs:
        first = lines(paragraphs[0])
        if is_head(first[0]):
            head.append(first[0])
            rest = "\n".join(first[1:]).strip()
            paragraphs = ([rest] if rest else []) + paragraphs[1:]
            guessed_head = False
        elif len(paragraphs) > 1 and len(first) == 1 and len(first[0].split()) <= 10:
            head.append(first[0])
            paragraphs = paragraphs[1:]
            guessed_head = True
        else:
            break
    tail: list[str] = []
    guessed_tail = False
    if paragraphs:
        last = lines(paragraphs[-1])
        if len(last) >= 2 and CLOSING.match(last[-2].strip()) and len(last[-1].split()) <= 3:
            tail = last[-2:]
        elif CLOSING.match(last[-1].strip()) and len(last[-1].split()) <= 8:
            tail = last[-1:]
        elif len(paragraphs) > 1 and len(last) == 1 and len(last[0].split()) <= 10:
            tail, guessed_tail = last, True
        if tail:
            rest = "\n".join(last[:len(last) - len(tail)]).strip()
            paragraphs = paragraphs[:-1] + ([rest] if rest else [])
    if give_back and not paragraphs and guessed_tail:
        paragraphs, tail = ["\n".join(tail)], []
    elif give_back and not paragraphs and guessed_head:
        paragraphs = [head.pop()]
    return head, "\n\n".join(paragraphs).strip(), tail


def join_frame(head: list[str], body: str, tail: list[str]) -> str:
    parts = ["\n".join(head)] if head else []
    if body.strip():
        parts.append(body.strip())
    if tail:
        parts.append("\n".join(tail))
    return "\n\n".join(parts).strip()


def body_of(text: str) -> str:
    return split_frame(text)[1]


def sentences(text: str) -> list[str]:
    """Sentences of ``text`` with list markers and line breaks removed (``evals.ops.sentences``)."""
    out = []
    for line in lines(text):
        line = MARKER.sub("", line).strip()
        if line:
            out.extend(s.strip() for s in SENT_END.split(line) if s.strip())
    return out


def words(text: str) -> list[str]:
    """Words that count towards length limits: not hashtags, not emoji-only tokens."""
    return [w for w in text.split() if re.search(r"\w", w) and not w.startswith("#")]


# -- where a person splits a long sentence -----------------------------------------------------------------

DASHES = ("-", "—", "–")
# A comma before one of these starts a clause; what the word becomes at the start of a sentence (None: dropped).
CLAUSE_WORDS = {"and": None, "or": None, "but": "But", "so": "So", "yet": "Yet", "which": "This"}


def split_points(tokens: list[str]) -> list[tuple[int, str | None]]:
    """Where a sentence, given as whitespace tokens, splits at a clause boundary: after ';', ':' or a dash,
    or after a comma that a coordinating conjunction or 'which' follows. Each point is (index of the first
    token of the second part, what that token becomes: None drops it, e.g. 'and'). Both parts keep at least
    three words; never a cut inside a clause."""
    points = []
    for i in range(1, len(tokens)):
        prev, word = tokens[i - 1], tokens[i]
        if prev in DASHES or prev.endswith((";", ":")):
            point = (i, word)
        elif prev.endswith(",") and word.lower() in CLAUSE_WORDS:
            point = (i, CLAUSE_WORDS[word.lower()])
        else:
            continue
        first = [t for t in tokens[:i] if t not in DASHES]
        rest = tokens[i + (1 if point[1] is None else 0):]
        if len(words(" ".join(first))) >= 3 and len(words(" ".join(rest))) >= 3:
            points.append(point)
    return points


def split_sentence(sentence: str, n: int) -> list[str]:
    """``sentence`` in pieces of at most ``n`` words where clause boundaries allow: cut at the last boundary
    that leaves at most ``n`` words before it (else the first boundary), then the rest likewise. A sentence of
    at most ``n`` words, or with no boundary, stays whole.

    >>> split_sentence("The film opens slowly, and the first hour feels long, but the ending pays off.", 10)
    ['The film opens slowly, and the first hour feels long.', 'But the ending pays off.']
    """
    tokens = sentence.split()
    points = split_points(tokens) if len(words(sentence)) > n else []
    if not points:
        return [sentence]
    fitting = [p for p in points if len(words(" ".join(tokens[:p[0]]))) <= n]
    cut, replacement = fitting[-1] if fitting else points[0]
    first = " ".join(t for t in tokens[:cut] if t not in DASHES).rstrip(",;:")
    rest = tokens[cut + 1:] if replacement is None else [replacement] + tokens[cut + 1:]
    rest_text = " ".join(rest)
    return [end_sentence(first)] + split_sentence(rest_text[:1].upper() + rest_text[1:], n)


def end_sentence(sentence: str) -> str:
    """``sentence`` with a full stop unless it already ends like a sentence."""
    sentence = sentence.strip()
    return sentence if sentence[-1:] in ".!?…:" else sentence + "."


def list_marker(body: str) -> str | None:
    """``"-"``/``"*"``/``"•"`` for a bullet list, ``"1."`` for a numbered list (1, 2, 3, ...), else None."""
    items = [ln for ln in lines(body) if ln.strip()]
    if len(items) < 2:
        return None
    if all(re.match(rf"^\s*{i}\. ", ln) for i, ln in enumerate(items, 1)):
        return "1."
    marks = {m.group(1) if (m := BULLET.match(ln)) else None for ln in items}
    return marks.pop() if len(marks) == 1 and None not in marks else None


def layout(body: str, kept: list[str], marker: str | None = None) -> str:
    """``kept`` sentences laid out like ``body``: one per line as a list, else the body's paragraphs
    (a sentence stays in the paragraph it came from)."""
    marker = marker or list_marker(body)
    if marker == "1.":
        return "\n".join(f"{i}. {s}" for i, s in enumerate(kept, 1))
    if marker:
        return "\n".join(f"{marker} {s}" for s in kept)
    paragraphs, left = [], list(kept)
    for para in re.split(r"\n\s*\n", body.strip()):
        n = len(sentences(para))
        chunk, left = left[:n], left[n:]
        if chunk:
            paragraphs.append(" ".join(chunk))
    if left:
        paragraphs.append(" ".join(left))
    return "\n\n".join(paragraphs)


def map_sentences(body: str, fn) -> str:
    """``body`` with each sentence replaced by the sentences ``fn(sentence)`` returns; a list stays a list
    (one item per sentence), paragraphs stay paragraphs. Unchanged when ``fn`` changes nothing."""
    marker = list_marker(body)
    if marker:
        old = sentences(body)
        new = [piece for s in old for piece in fn(s)]
        return body if new == old else layout(body, new, marker)
    paragraphs = []
    for para in re.split(r"\n\s*\n", body.strip()):
        old = sentences(para)
        new = [piece for s in old for piece in fn(s)]
        paragraphs.append(para if new == old else " ".join(new))
    return "\n\n".join(paragraphs)


def survives(sentence: str, text: str) -> bool:
    """Most of ``sentence`` is still in ``text`` (edited or not)."""
    return fuzz.partial_ratio(norm(sentence), norm(text)) >= 80


def own_sentences(draft_body: str, edited_body: str) -> list[str]:
    """The edited body's sentences without the trailing ones that are not from the draft (text the user
    appended, which length limits do not count)."""
    es, ds = sentences(edited_body), [norm(d) for d in sentences(draft_body)]
    while es and not any(fuzz.ratio(norm(es[-1]), d) >= 60 or fuzz.partial_ratio(norm(es[-1]), d) >= 90
                         for d in ds):
        es = es[:-1]
    return es


def capitalise_at(text: str, i: int) -> str:
    """``text`` with the first letter at or after ``i`` (on the same line) in upper case."""
    m = re.compile(r"[ \t\"'(\[]*([a-z])").match(text, i)
    return text[:m.start(1)] + m.group(1).upper() + text[m.end(1):] if m else text


def norm(text: str) -> str:
    """Lower-case words only, single spaces: the form keys and comparisons use."""
    return " ".join(w.lower() for w in re.findall(r"\w+(?:['’]\w+)*", text))


def phrase_pattern(phrase: str) -> str:
    """A regex for ``phrase`` between word boundaries, any run of spaces between its words."""
    parts = [re.escape(p) for p in phrase.split()]
    return r"(?<![\w'’])" + r"\s+".join(parts) + r"(?![\w'’])"
