"""The closed set of edit-rule kinds: what each fixes, when a draft offers the chance, how it applies.

Every kind is a frozen dataclass whose fields are its parameters. ``apply`` never touches text the rule
does not match, and applying twice changes nothing. ``stage`` orders application: content edits (0),
then form (1), then frame lines (2).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import ClassVar

from rapidfuzz import fuzz

from . import text as tx

MAX_TEXT = 200          # characters of any text parameter (a user may PATCH it)
MAX_LINE_WORDS = 10     # an opening/closing line longer than this would not be seen as a frame line
MAX_PHRASE_WORDS = 12   # a phrase to delete or text to append
LIST_MARKERS = ("-", "*", "•")


def _clean_text(value: object, name: str, *, words: int | None = None, lines: int = 1) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    text = "\n".join(" ".join(line.split()) for line in value.strip().splitlines() if line.strip())
    if not text:
        raise ValueError(f"{name} must not be empty")
    if len(text) > MAX_TEXT:
        raise ValueError(f"{name} is longer than {MAX_TEXT} characters")
    if text.count("\n") >= lines:
        raise ValueError(f"{name} must be {'one line' if lines == 1 else f'at most {lines} lines'}")
    if words is not None and any(len(line.split()) > words for line in text.splitlines()):
        raise ValueError(f"{name} has more than {words} words")
    return text


def _positive(value: object, name: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise ValueError(f"{name} must be a whole number from 1 to 10000")
    return value


@dataclass(frozen=True)
class Rule:
    """Base of the rule kinds; see ``agent.rules`` for mining, evidence and application."""

    kind: ClassVar[str] = ""
    stage: ClassVar[int] = 0
    order: ClassVar[int] = 0
    text_field: ClassVar[str | None] = None   # the parameter a user edits as the rule's "text"

    # -- identity and serialisation ------------------------------------------------------------------
    @property
    def params(self) -> dict:
        return asdict(self)

    @property
    def key(self) -> str:
        """Kind and normalised parameters: the same rule mined twice has one key."""
        norm = {k: (" ".join(v.lower().split()) if isinstance(v, str) else v) for k, v in self.params.items()}
        return f"{self.kind}:{json.dumps(norm, sort_keys=True, ensure_ascii=False)}"

    @property
    def text(self) -> str | None:
        """The part a user may edit (the replacement, the phrase, the line, the limit), or None."""
        return None if self.text_field is None else str(getattr(self, self.text_field))

    def with_text(self, new_text: str) -> "Rule":
        """A copy with its text changed (validated: ``ValueError`` when empty, too long or not valid)."""
        if self.text_field is None:
            raise ValueError(f"a {self.kind} rule has no text to change")
        if not isinstance(new_text, str) or not new_text.strip():
            raise ValueError("rule text must not be empty")
        if len(new_text.strip()) > MAX_TEXT:
            raise ValueError(f"rule text is longer than {MAX_TEXT} characters")
        return replace(self, **{self.text_field: new_text})

    def to_dict(self) -> dict:
        return {"kind": self.kind, "params": self.params, "text": self.text, "description": self.describe()}

    # -- behaviour ------------------------------------------------------------------------------------
    def describe(self) -> str:
        raise NotImplementedError

    def done(self, text: str) -> bool:
        """The text already satisfies the rule."""
        raise NotImplementedError

    def opportunity(self, draft: str) -> bool:
        """The draft offered the chance to make this fix."""
        return not self.done(draft)

    def followed(self, draft: str, edited: str) -> bool | None:
        """Given the chance, did the user make the fix (True: support; False: contradiction)? None:
        no chance, or the edit tells nothing."""
        if not self.opportunity(draft):
            return None
        return self.done(edited)

    def apply(self, text: str) -> str:
        """``text`` with the fix made where the rule matches; unchanged elsewhere; idempotent."""
        return self._fix(text) if self.opportunity(text) else text

    def _fix(self, text: str) -> str:
        raise NotImplementedError


# -- content ---------------------------------------------------------------------------------------

def _positional_lower(phrase: str) -> str:
    """'However' -> 'however' (the capital only marked a sentence start), but 'I am', 'OP' stay."""
    first = phrase.split()[0] if phrase.split() else ""
    if first[:1].isupper() and first[1:] == first[1:].lower() and not re.match(r"^I(?:['’]\w+)?$", first):
        return phrase[:1].lower() + phrase[1:]
    return phrase


@dataclass(frozen=True)
class ReplacePhrase(Rule):
    old: str
    new: str
    kind: ClassVar[str] = "replace_phrase"
    stage: ClassVar[int] = 0
    order: ClassVar[int] = 0
    text_field: ClassVar[str] = "new"

    def __post_init__(self):
        old = _clean_text(self.old, "old phrase", words=6)
        new = _clean_text(self.new, "new phrase", words=6)
        if tx.norm(old) == tx.norm(new) or not tx.norm(old):
            raise ValueError("a replacement must change the words")
        if re.search(tx.phrase_pattern(old), new, re.I):
            raise ValueError(f"the new phrase {new!r} contains the old one {old!r}")
        object.__setattr__(self, "old", old)
        object.__setattr__(self, "new", new)

    def _pattern(self) -> re.Pattern:
        return re.compile(tx.phrase_pattern(self.old), re.I)

    def describe(self) -> str:
        return f"replace '{self.old}' with '{self.new}'"

    def done(self, text: str) -> bool:
        return not self._pattern().search(text)

    def followed(self, draft: str, edited: str) -> bool | None:
        if self.done(draft):
            return None
        if not self.done(edited):
            return False
        new = re.compile(tx.phrase_pattern(self.new), re.I)
        # the old phrase is gone: a fix if the new one came in, else its sentence went (no evidence)
        return True if len(new.findall(edited)) > len(new.findall(draft)) else None

    def _fix(self, text: str) -> str:
        raise_first = self.old[:1].islower()

        def sub(m: re.Match) -> str:
            if raise_first and m.group(0)[:1].isupper() and self.new[:1].islower():
                return self.new[:1].upper() + self.new[1:]
            return self.new
        return self._pattern().sub(sub, text)


_LEFT_START = re.compile(r"(?:\A|\n[ \t]*|[.!?…][\"')\]]*[ \t]+|(?:\A|\n)[ \t]*(?:[-*•]|\d+[.)])[ \t]+)\Z")
_LEFT_CLAUSE = re.compile(r"[,;:][ \t]*\Z")
_RIGHT = re.compile(r"[ \t]*([.!?…,;:]+|(?=\n)|$)")


@dataclass(frozen=True)
class DeletePhrase(Rule):
    phrase: str
    kind: ClassVar[str] = "delete_phrase"
    stage: ClassVar[int] = 0
    order: ClassVar[int] = 1
    text_field: ClassVar[str] = "phrase"

    def __post_init__(self):
        phrase = _clean_text(self.phrase, "phrase", words=MAX_PHRASE_WORDS).rstrip(".!?,;:… ")
        if len(tx.norm(phrase).split()) < 2:
            raise ValueError("a phrase to delete has at least two words")
        object.__setattr__(self, "phrase", phrase)

    def describe(self) -> str:
        return f"delete '{self.phrase}'"

    def _spans(self, text: str) -> list[tuple[int, int, int | None]]:
        """``(start, end, capitalise_at)`` of each deletable occurrence: a whole sentence, a leading
        clause ("To be honest, ...") or a trailing clause (", I hope this helps.") — never a cut out
        of the middle of a clause, which would leave it dangling."""
        spans = []
        for m in re.finditer(tx.phrase_pattern(self.phrase), text, re.I):
            before, right = text[:m.start()], _RIGHT.match(text, m.end())
            if not right:
                continue
            punct = right.group(1)[:1]
            if _LEFT_START.search(before):
                end = right.end()
                while end < len(text) and text[end] in " \t":
                    end += 1
                # a whole sentence goes with its full stop; a leading clause with its comma
                spans.append((m.start(), end, m.start() if punct in (",", ";", ":") else None))
            elif (left := _LEFT_CLAUSE.search(before)) and punct != ":":
                spans.append((left.start(), right.start(1), None))
        return spans

    def opportunity(self, draft: str) -> bool:
        return bool(self._spans(draft))

    def done(self, text: str) -> bool:
        return not self._spans(text)

    def followed(self, draft: str, edited: str) -> bool | None:
        if not self.opportunity(draft):
            return None
        pattern = re.compile(tx.phrase_pattern(self.phrase), re.I)
        if pattern.search(edited):
            return False
        # gone with the sentences around it to the end: the user cut the end, which says nothing
        # about this phrase
        ds = tx.sentences(tx.body_of(draft))
        at = next((i for i, s in enumerate(ds) if pattern.search(s)), None)
        cut = max((i + 1 for i, s in enumerate(ds) if tx.survives(s, edited)), default=0)
        if at is not None and at >= cut and len(ds) - cut >= 2:
            return None
        return True

    def _fix(self, text: str) -> str:
        for start, end, cap in reversed(self._spans(text)):
            text = text[:start] + text[end:]
            if cap is not None:
                text = tx.capitalise_at(text, start)
        # a list item left empty goes, and so does a paragraph
        text = re.sub(r"(?m)^[ \t]*(?:[-*•]|\d+[.)])[ \t]*(?:\n|\Z)", "", text)
        text = re.sub(r"[ \t]+(?=\n|\Z)", "", text)
        return re.sub(r"\n{3,}", "\n\n", text).strip()


# -- form (on the body, between the frame lines) ---------------------------------------------------

def _on_body(text: str, fn) -> str:
    head, body, tail = tx.split_frame(text)
    new = fn(body)
    return text if new == body else tx.join_frame(head, new, tail)


def _own(draft: str, edited: str) -> list[str]:
    return tx.own_sentences(tx.body_of(draft), tx.body_of(edited))


def _cut(draft: str, edited: str) -> list[str] | None:
    """The draft sentences the user cut from the end of the body (the ones after the last that is still there),
    as a length limit cuts; None when the last sentence is still there (shorter by deletions in the middle says
    nothing about a limit)."""
    ds = tx.sentences(tx.body_of(draft))
    body = tx.body_of(edited)
    last = max((i for i, s in enumerate(ds) if tx.survives(s, body)), default=-1)
    return ds[last + 1:] if ds and last + 1 < len(ds) else None


def _whole_in(sentence: str, edited_sentences: list[str]) -> bool:
    """``sentence`` is one sentence of the edited text (edited lightly or not): it was not split."""
    target = tx.norm(sentence)
    return any(fuzz.ratio(target, tx.norm(e)) >= 90 for e in edited_sentences)


@dataclass(frozen=True)
class MaxSentenceWords(Rule):
    n: int
    kind: ClassVar[str] = "max_sentence_words"
    stage: ClassVar[int] = 1
    order: ClassVar[int] = 0
    text_field: ClassVar[str] = "n"

    def __post_init__(self):
        object.__setattr__(self, "n", _positive(self.n, "n"))

    def describe(self) -> str:
        return f"sentences of at most {self.n} words"

    def _splittable(self, text: str) -> list[str]:
        """The body's sentences over the limit that have a clause boundary to split at."""
        return [s for s in tx.sentences(tx.body_of(text))
                if len(tx.words(s)) > self.n and tx.split_points(s.split())]

    def followed(self, draft: str, edited: str) -> bool | None:
        """Each long sentence the rule would split: left whole is a contradiction; split by the user (its words
        still there, no longer one sentence) is support; rewritten or deleted says nothing."""
        long = self._splittable(draft)
        if not long:
            return None
        body = tx.body_of(edited)
        es = tx.sentences(body)
        if any(_whole_in(s, es) for s in long):
            return False
        return True if any(tx.survives(s, body) for s in long) else None

    def done(self, text: str) -> bool:
        return not self._splittable(text)

    def _fix(self, text: str) -> str:
        return _on_body(text, lambda body: tx.map_sentences(body, lambda s: tx.split_sentence(s, self.n)))


@dataclass(frozen=True)
class MaxSentences(Rule):
    n: int
    kind: ClassVar[str] = "max_sentences"
    stage: ClassVar[int] = 1
    order: ClassVar[int] = 1
    text_field: ClassVar[str] = "n"

    def __post_init__(self):
        object.__setattr__(self, "n", _positive(self.n, "n"))

    def describe(self) -> str:
        return f"at most {self.n} sentence{'s' if self.n != 1 else ''}"

    def followed(self, draft: str, edited: str) -> bool | None:
        """Kept more sentences than the limit: a contradiction. Cut the end down to exactly the limit: support;
        cut further than the limit asks: a contradiction (the cut is not this limit's). No cut at the end:
        nothing said."""
        if not self.opportunity(draft):
            return None
        kept = len(_own(draft, edited))
        if kept > self.n:
            return False
        if _cut(draft, edited) is None:
            return None
        return kept == self.n

    def done(self, text: str) -> bool:
        return len(tx.sentences(tx.body_of(text))) <= self.n

    def _fix(self, text: str) -> str:
        return _on_body(text, lambda body: tx.layout(body, tx.sentences(body)[:self.n]))


@dataclass(frozen=True)
class MaxWords(Rule):
    n: int
    kind: ClassVar[str] = "max_words"
    stage: ClassVar[int] = 1
    order: ClassVar[int] = 2
    text_field: ClassVar[str] = "n"

    def __post_init__(self):
        object.__setattr__(self, "n", _positive(self.n, "n"))

    def describe(self) -> str:
        return f"at most {self.n} words"

    def followed(self, draft: str, edited: str) -> bool | None:
        """Kept more words than the limit: a contradiction. Cut the end so that the next sentence would not have
        fitted: support; cut further than the limit asks: a contradiction. No cut at the end: nothing said."""
        if not self.opportunity(draft):
            return None
        kept = sum(len(tx.words(s)) for s in _own(draft, edited))
        if kept > self.n:
            return False
        cut = _cut(draft, edited)
        if cut is None:
            return None
        return kept + len(tx.words(cut[0])) > self.n

    def done(self, text: str) -> bool:
        return len(tx.words(tx.body_of(text))) <= self.n

    def _fix(self, text: str) -> str:
        def fn(body: str) -> str:
            kept, count = [], 0
            for s in tx.sentences(body):
                w = len(tx.words(s))
                if kept and count + w > self.n:
                    break
                kept.append(s)   # whole sentences only: a first sentence over the limit stays whole
                count += w
            return body if kept == tx.sentences(body) else tx.layout(body, kept)
        return _on_body(text, fn)


@dataclass(frozen=True)
class BulletList(Rule):
    marker: str = "-"
    kind: ClassVar[str] = "bullets"
    stage: ClassVar[int] = 1
    order: ClassVar[int] = 3
    text_field: ClassVar[str] = "marker"

    def __post_init__(self):
        marker = str(self.marker).strip()
        if marker not in LIST_MARKERS:
            raise ValueError(f"marker must be one of {', '.join(LIST_MARKERS)}")
        object.__setattr__(self, "marker", marker)

    def describe(self) -> str:
        return f"bullet points ('{self.marker} '), one per line"

    def done(self, text: str) -> bool:
        items = [ln for ln in tx.lines(tx.body_of(text)) if ln.strip()]
        return bool(items) and all(ln.lstrip().startswith(self.marker + " ") for ln in items)

    def opportunity(self, draft: str) -> bool:
        return bool(tx.sentences(tx.body_of(draft))) and not self.done(draft)

    def _fix(self, text: str) -> str:
        return _on_body(text, lambda body: "\n".join(f"{self.marker} {s}" for s in tx.sentences(body)))


@dataclass(frozen=True)
class NumberedList(Rule):
    kind: ClassVar[str] = "numbered"
    stage: ClassVar[int] = 1
    order: ClassVar[int] = 4

    def describe(self) -> str:
        return "numbered points, one per line"

    def done(self, text: str) -> bool:
        items = [ln for ln in tx.lines(tx.body_of(text)) if ln.strip()]
        return bool(items) and all(re.match(rf"^{i}\. ", ln.lstrip()) for i, ln in enumerate(items, 1))

    def opportunity(self, draft: str) -> bool:
        return bool(tx.sentences(tx.body_of(draft))) and not self.done(draft)

    def _fix(self, text: str) -> str:
        return _on_body(text, lambda body: "\n".join(f"{i}. {s}" for i, s in enumerate(tx.sentences(body), 1)))


@dataclass(frozen=True)
class NoExclamation(Rule):
    kind: ClassVar[str] = "no_exclamation"
    stage: ClassVar[int] = 1
    order: ClassVar[int] = 5

    def describe(self) -> str:
        return "no exclamation marks"

    def done(self, text: str) -> bool:
        return "!" not in tx.body_of(text)

    def _fix(self, text: str) -> str:
        return _on_body(text, lambda body: re.sub(r"!+", ".", re.sub(r"\?!+|!+\?", "?", body)))


# -- frame lines -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EndText(Rule):
    ending: str
    kind: ClassVar[str] = "end_text"
    stage: ClassVar[int] = 2
    order: ClassVar[int] = 0
    text_field: ClassVar[str] = "ending"

    def __post_init__(self):
        object.__setattr__(self, "ending", _clean_text(self.ending, "ending", words=MAX_PHRASE_WORDS))

    def describe(self) -> str:
        return f"end with '{self.ending}'"

    def done(self, text: str) -> bool:
        want = [t.lower() for t in tx.TOKEN.findall(self.ending)]
        have = [t.lower() for t in tx.TOKEN.findall(tx.body_of(text))]
        return have[-len(want):] == want

    def _fix(self, text: str) -> str:
        def fn(body: str) -> str:
            marker = tx.list_marker(body)
            if marker == "1.":
                return f"{body}\n{len(tx.lines(body)) + 1}. {self.ending}"
            if marker:
                return f"{body}\n{marker} {self.ending}"
            return f"{body} {self.ending}".strip()
        return _on_body(text, fn)


@dataclass(frozen=True)
class RemoveClosing(Rule):
    kind: ClassVar[str] = "remove_closing"
    stage: ClassVar[int] = 2
    order: ClassVar[int] = 1

    def describe(self) -> str:
        return "no sign-off or closing line"

    def done(self, text: str) -> bool:
        return not tx.is_closing(tx.split_frame(text)[2])

    def followed(self, draft: str, edited: str) -> bool | None:
        if self.done(draft):
            return None
        kept = {tx.norm(ln) for ln in tx.lines(edited)[-3:]}
        closing = [ln for ln in tx.split_frame(draft)[2] if tx.CLOSING.match(ln.strip())]
        return self.done(edited) and not any(tx.norm(ln) in kept for ln in closing)

    def _fix(self, text: str) -> str:
        head, body, _ = tx.split_frame(text)
        return tx.join_frame(head, body, [])


@dataclass(frozen=True)
class ClosingLine(Rule):
    line: str
    kind: ClassVar[str] = "closing_line"
    stage: ClassVar[int] = 2
    order: ClassVar[int] = 2
    text_field: ClassVar[str] = "line"

    def __post_init__(self):
        object.__setattr__(self, "line", _clean_text(self.line, "line", words=MAX_LINE_WORDS, lines=2))

    def describe(self) -> str:
        return f"end with the line '{self.line.replace(chr(10), ' / ')}'"

    def done(self, text: str) -> bool:
        want = self.line.splitlines()
        return [tx.norm(ln) for ln in tx.lines(text)[-len(want):]] == [tx.norm(ln) for ln in want]

    def _fix(self, text: str) -> str:
        head, body, tail = tx.split_frame(text)
        if tx.is_closing(tail):
            tail = []          # the line replaces another sign-off
        return tx.join_frame(head, tx.join_frame([], body, tail), self.line.splitlines())


@dataclass(frozen=True)
class OpeningLine(Rule):
    line: str
    kind: ClassVar[str] = "opening_line"
    stage: ClassVar[int] = 2
    order: ClassVar[int] = 3
    text_field: ClassVar[str] = "line"

    def __post_init__(self):
        object.__setattr__(self, "line", _clean_text(self.line, "line", words=MAX_LINE_WORDS))

    def describe(self) -> str:
        return f"start with the line '{self.line}'"

    def done(self, text: str) -> bool:
        first = tx.lines(text)[:1]
        return bool(first) and tx.norm(first[0]) == tx.norm(self.line) and first[0].strip()[-1:] == self.line[-1:]

    def _fix(self, text: str) -> str:
        head, body, tail = tx.split_frame(text)
        if tx.GREETING.match(self.line):
            # a greeting replaces the draft's greeting: a greeting line goes; "Hi Sam, I hope ..." at the
            # start of the first line loses its greeting (no second greeting under the new one)
            head = [h for h in head if not tx.is_head(h) or not tx.GREETING.match(h.strip())]
            if head and (m := tx.INLINE_GREETING.match(head[0])):
                head[0] = tx.capitalise_at(head[0][m.end():], 0)
            elif not head and (m := tx.INLINE_GREETING.match(body)):
                body = tx.capitalise_at(body[m.end():], 0)
            head = [h for h in head if h.strip()]
        head = [h for h in head if tx.norm(h) != tx.norm(self.line)]
        return tx.join_frame([self.line] + head, body, tail)


KINDS: dict[str, type[Rule]] = {cls.kind: cls for cls in (
    ReplacePhrase, DeletePhrase, MaxSentenceWords, MaxSentences, MaxWords, BulletList, NumberedList, NoExclamation,
    EndText, RemoveClosing, ClosingLine, OpeningLine)}


def rule_from_dict(data: dict) -> Rule:
    """A rule from ``{"kind": ..., "params": {...}}`` (``to_dict`` output); ``ValueError`` names what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("a rule is an object with 'kind' and 'params'")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown rule kind {kind!r}; choose one of: {', '.join(KINDS)}")
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"params of a {kind} rule must be an object")
    cls = KINDS[kind]
    names = {f.name for f in fields(cls)}
    unknown = set(params) - names
    if unknown:
        raise ValueError(f"unknown parameter(s) for a {kind} rule: {', '.join(sorted(unknown))}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for a {kind} rule: {exc}") from exc
