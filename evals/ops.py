"""Text operations of the rule-based simulated user.

A rule user's latent preference is a list of operations. Each operation has a short ``description``,
a ``check(text) -> bool`` (is the text already fine?) and an ``edit(text) -> str`` after which its check
passes. Operations are built from plain dicts (``{"op": "max_words", "n": 40}``) with ``build_operation``
so users can be written in a YAML/JSON spec without code.

Texts are seen as a *frame* (greeting/heading/TL;DR lines at the top, a sign-off at the bottom) around
a *body*; length and layout operations act on the body only, so a greeting never counts as a sentence. The
operations are the simulated users' own, but what they read (frame, greetings and sign-offs, sentences, words,
clause boundaries, list markers, emoji, hashtags) is redline's one reading of text (``redline.text``), so a
simulated user and the edit rules learned from it read a text alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from redline import text as tx
from redline.text import sentences

__all__ = ["Operation", "OPERATIONS", "build_operation", "sentences", "split_frame"]

def split_frame(text: str) -> tuple[list[str], str, list[str]]:
    """``(head_lines, body, tail_lines)``: greeting/heading/TL;DR lines (or a short first paragraph of one
    line) on top; a sign-off (or a short last paragraph of one line) below (``redline.text``)."""
    return tx.split_frame(text, give_back=False)


def _join(head: list[str], body: str, tail: list[str]) -> str:
    parts = []
    if head:
        parts.append("\n".join(head))
    if body:
        parts.append(body)
    if tail:
        parts.append("\n".join(tail))
    return "\n\n".join(parts).strip()


def _on_body(fn: Callable[[str], str]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        head, body, tail = split_frame(text)
        return _join(head, fn(body), tail)
    return edit


def _body(text: str) -> str:
    return split_frame(text)[1]


@dataclass
class Operation:
    """One preference component: what it wants, how to tell, how the user fixes it."""

    kind: str
    description: str
    check: Callable[[str], bool] = field(repr=False)
    edit: Callable[[str], str] = field(repr=False)
    params: dict = field(default_factory=dict)

    def apply(self, text: str) -> str:
        """The text after this operation: unchanged when the check already passes."""
        return text if self.check(text) else self.edit(text)


# -- the operation kinds ---------------------------------------------------------------------------

def _bullets(marker: str = "-") -> Operation:
    def check(text):
        lines = [ln for ln in tx.lines(_body(text)) if ln.strip()]
        return bool(lines) and all(ln.lstrip().startswith(marker + " ") for ln in lines)
    return Operation("bullets", "bullet points, one per line", check,
                     _on_body(lambda b: "\n".join(f"{marker} {s}" for s in sentences(b))), {"marker": marker})


def _numbered() -> Operation:
    def check(text):
        lines = [ln for ln in tx.lines(_body(text)) if ln.strip()]
        return bool(lines) and all(re.match(rf"^{i}\. ", ln.lstrip()) for i, ln in enumerate(lines, 1))
    return Operation("numbered", "numbered points, one per line", check,
                     _on_body(lambda b: "\n".join(f"{i}. {s}" for i, s in enumerate(sentences(b), 1))))


def _rebuild_like(body: str, kept: list[str]) -> str:
    """Keep the body's layout (bullets/numbers/lines or one paragraph) for a shorter list of sentences."""
    lines = [ln for ln in tx.lines(body) if ln.strip()]
    if lines and all(re.match(r"^\d+\. ", ln.lstrip()) for ln in lines):
        return "\n".join(f"{i}. {s}" for i, s in enumerate(kept, 1))
    if lines and all(ln.lstrip()[:2] in ("- ", "* ", "• ") for ln in lines):
        return "\n".join(f"{lines[0].lstrip()[0]} {s}" for s in kept)
    return " ".join(kept)


def _max_sentences(n: int) -> Operation:
    def edit(body):
        return _rebuild_like(body, sentences(body)[:n])
    return Operation("max_sentences", f"at most {n} sentences", lambda t: len(sentences(_body(t))) <= n,
                     _on_body(edit), {"n": n})


def _max_words(n: int) -> Operation:
    def edit(body):
        kept, count = [], 0
        for s in sentences(body):
            w = tx.words(s)
            if count + len(w) > n:
                if not kept:
                    kept.append(tx.end_sentence(" ".join(w[: max(1, n)]).rstrip(",;:")))
                break
            kept.append(s)
            count += len(w)
        return _rebuild_like(body, kept)
    return Operation("max_words", f"at most {n} words", lambda t: len(tx.words(_body(t))) <= n,
                     _on_body(edit), {"n": n})


def _split_long_sentences(n: int) -> Operation:
    """Sentences over ``n`` words are split at clause boundaries (``redline.text.split_sentence``); a long
    sentence with no such place is left as it is, as a person would rather than cut it mid-clause."""

    def check(text):
        return all(len(tx.words(s)) <= n or not tx.split_points(s.split()) for s in sentences(_body(text)))

    def edit(body):
        out = []
        for s in sentences(body):
            out.extend(tx.split_sentence(s, n))
        return _rebuild_like(body, out)
    return Operation("split_long_sentences", f"short sentences (at most {n} words each)", check, _on_body(edit),
                     {"n": n})


def _prefix_line(text: str) -> Operation:
    """The text opens with ``text``: a draft that already starts with it (on its own line or followed by
    more) is left alone; a greeting replaces the draft's greeting, whether a line or the start of a sentence."""
    line = text.strip()

    def check(t):
        first = tx.lines(t)[0] if t.strip() else ""
        return first == line or (first.startswith(line) and first[len(line):len(line) + 1].isspace())

    def edit(t):
        head, body, tail = split_frame(t)
        if tx.GREETING.match(line):
            head = [h for h in head if not tx.GREETING.match(h.strip())]
            if not head:
                body = tx.INLINE_GREETING.sub("", body, count=1)
                body = body[:1].upper() + body[1:]
        # the line heads the text once: a body line or list item that says it goes (a list operation before this one
        # numbers a draft that is only the line, "1. Here's the story.", and the user does not write it twice)
        all_rows = body.split("\n")
        rows = [r for r in all_rows if tx.MARKER.sub("", r).strip() != line]
        if len(rows) < len(all_rows):
            items = [r for r in rows if r.strip()]
            a_list = bool(items) and all(tx.LIST_ITEM.match(r) for r in items)
            body = _rebuild_like(body, sentences("\n".join(rows))) if a_list else "\n".join(rows).strip("\n")
        return _join([line] + [h for h in head if h.strip() != line], body, tail)
    return Operation("prefix_line", f"starts with the line '{line}'", check, edit, {"text": line})


def _closing_line(text: str) -> Operation:
    line = text.strip()

    def edit(t):
        head, body, tail = split_frame(t)
        if tail and not tx.is_closing(tail):  # a short last paragraph of content stays; only a sign-off goes
            body, tail = _join([], body, tail), []
        return _join(head, body, []) + "\n\n" + line
    return Operation("closing_line", f"ends with the line '{line}'",
                     lambda t: bool(t.strip()) and tx.lines(t)[-1].strip() == line, edit, {"text": line})


def _remove_closing() -> Operation:
    def edit(t):
        head, body, tail = split_frame(t)
        return _join(head, body, [] if tx.is_closing(tail) else tail)
    return Operation("remove_closing", "no sign-off or closing line", lambda t: not tx.is_closing(split_frame(t)[2]),
                     edit)


def _replace_terms(terms: dict[str, str]) -> Operation:
    patterns = [(re.compile(rf"\b{re.escape(a)}\b", re.I), b) for a, b in terms.items()]

    def repl(b: str) -> Callable[[re.Match], str]:
        def fn(m: re.Match) -> str:  # capitalised where a sentence starts, as written elsewhere ("Then OP left")
            at_start = tx.starts_sentence(m.string, m.start())
            return b[:1].upper() + b[1:] if at_start and m.group(0)[:1].isupper() and b else b
        return fn

    def edit(t):
        for pat, b in patterns:
            t = pat.sub(repl(b), t)
        return t
    listed = ", ".join(f"'{b}' instead of '{a}'" for a, b in list(terms.items())[:4])
    return Operation("replace_terms", f"plain words: {listed}", lambda t: not any(p.search(t) for p, _ in patterns),
                     edit, {"terms": dict(terms)})


def _delete_phrases(phrases: list[str]) -> Operation:
    """No stock phrases: a person deletes the whole sentence (or line) that carries one, never a piece of it."""
    patterns = [re.compile(rf"\b{re.escape(p)}\b", re.I) for p in phrases]

    def stock(sentence: str) -> bool:
        return any(p.search(sentence) for p in patterns)

    def edit(t):
        lines = []
        for line in t.strip().splitlines():
            marker = tx.MARKER.match(line)
            prefix = marker.group(0) if marker else ""
            kept = [s for s in tx.sentence_pieces(line[len(prefix):].strip()) if s.strip() and not stock(s)]
            if kept or not line.strip():
                lines.append((prefix + " ".join(k.strip() for k in kept)).rstrip() if kept else "")
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return Operation("delete_phrases", "no stock phrases such as '" + "', '".join(phrases[:3]) + "'",
                     lambda t: not any(p.search(t) for p in patterns), edit, {"phrases": list(phrases)})


def _no_exclamation() -> Operation:
    return Operation("no_exclamation", "no exclamation marks", lambda t: "!" not in t,
                     lambda t: re.sub(r"!+", ".", t))


def _append_emojis(emojis: str = "✨🚀", min_count: int = 1) -> Operation:
    def check(t):
        return len(tx.EMOJI.findall(t)) >= min_count

    def edit(t):
        missing = min_count - len(tx.EMOJI.findall(t))
        return t.rstrip() + " " + (emojis * max(1, missing))[: max(len(emojis), missing)]
    return Operation("append_emojis", f"with emojis like {emojis}", check, edit,
                     {"emojis": emojis, "min_count": min_count})


_QUESTIONS = ("What is it about?", "What stands out?", "What is the verdict?", "Anything else?")


def _question_answer(questions: list[str] | None = None) -> Operation:
    qs = list(questions or _QUESTIONS)

    def check(t):
        lines = [ln.strip() for ln in tx.lines(_body(t)) if ln.strip()]
        return (len(lines) >= 2 and len(lines) % 2 == 0
                and all(ln.startswith("Q:" if i % 2 == 0 else "A:") for i, ln in enumerate(lines)))

    def edit(body):
        sents = sentences(body) or [body.strip() or "Nothing to add."]
        groups = min(len(qs), len(sents))
        size = -(-len(sents) // groups)
        out = []
        for i in range(groups):
            chunk = sents[i * size:(i + 1) * size]
            if chunk:
                out += [f"Q: {qs[i]}", "A: " + " ".join(chunk)]
        return "\n".join(out)
    return Operation("question_answer", "question-answer format (Q:/A: lines)", check, _on_body(edit),
                     {"questions": qs})


def _tldr_first(prefix: str = "TL;DR:") -> Operation:
    def check(t):
        return bool(t.strip()) and tx.lines(t)[0].startswith(prefix)

    label = prefix.strip().lower()

    def labelled(line: str) -> bool:
        return line.strip().lower().startswith((label, "tl;dr"))

    def edit(t):
        head, body, tail = split_frame(t)
        if body.strip().lower().startswith(label):
            # the body already opens with the label run into its paragraph: a person moves that sentence up to a
            # line of its own rather than labelling it twice ('In short: In short: Bee pollination ...')
            body = body.strip()[len(label):].lstrip()
        first = (sentences(body) or ["(nothing)"])[0]
        return _join([f"{prefix} {first}"] + [h for h in head if not labelled(h)], body, tail)
    return Operation("tldr_first", f"a '{prefix}' line first", check, edit, {"prefix": prefix})


def _heading(text: str | None = None, words: int = 5) -> Operation:
    def check(t):
        return bool(t.strip()) and tx.lines(t)[0].startswith("# ")

    def edit(t):
        head, body, tail = split_frame(t)
        title = text or " ".join(tx.words((sentences(body) or ["Summary"])[0])[:words]).rstrip(".,;:!?")
        return _join([f"# {title}"] + [h for h in head if not h.startswith("#")], body, tail)
    return Operation("heading", "a heading line ('# …') first", check, edit, {"text": text, "words": words})


def _hashtags(tags: list[str]) -> Operation:
    tags = [t if t.startswith("#") else "#" + t for t in tags]
    return Operation("hashtags", "hashtags such as " + " ".join(tags[:3]),
                     lambda t: bool(tx.HASHTAG.search(t)), lambda t: t.rstrip() + " " + " ".join(tags),
                     {"tags": tags})


def _end_with_question(question: str) -> Operation:
    """The text ends (before any sign-off) by asking the reader a question; added as its own last line."""
    q = question.strip()

    def split_signoff(t: str) -> tuple[str, list[str]]:
        head, body, tail = split_frame(t)
        if tail and tx.is_closing(tail):
            return _join(head, body, []), tail
        return t.strip(), []

    def check(t):
        content, _ = split_signoff(t)
        return bool(content) and tx.lines(content)[-1].rstrip().endswith("?")

    def edit(t):
        content, signoff = split_signoff(t)
        return _join([], (content + "\n\n" + q).strip(), signoff)
    return Operation("end_with_question", f"ends by asking the reader a question, e.g. '{q}'", check, edit,
                     {"question": q})


OPERATIONS: dict[str, Callable[..., Operation]] = {
    "bullets": _bullets, "numbered": _numbered, "max_sentences": _max_sentences, "max_words": _max_words,
    "split_long_sentences": _split_long_sentences, "prefix_line": _prefix_line, "closing_line": _closing_line,
    "remove_closing": _remove_closing, "replace_terms": _replace_terms, "delete_phrases": _delete_phrases,
    "no_exclamation": _no_exclamation, "append_emojis": _append_emojis, "question_answer": _question_answer,
    "tldr_first": _tldr_first, "heading": _heading, "hashtags": _hashtags, "end_with_question": _end_with_question,
}


def build_operation(spec: dict) -> Operation:
    """An ``Operation`` from ``{"op": kind, **params}``; unknown kinds or parameters raise ``ValueError``.

    >>> build_operation({"op": "max_words", "n": 3}).edit("One two three. Four five.")
    'One two three.'
    """
    spec = dict(spec)
    kind = spec.pop("op", None)
    description = spec.pop("description", None)
    if kind not in OPERATIONS:
        raise ValueError(f"unknown operation {kind!r}; choose one of: {', '.join(OPERATIONS)}")
    try:
        op = OPERATIONS[kind](**spec)
    except TypeError as exc:
        raise ValueError(f"bad parameters for operation {kind!r}: {exc}") from exc
    if description:
        op.description = description
    return op
