"""The closed set of edit-rule kinds: what each fixes, when a draft offers the chance, how it applies.

``KINDS`` is a table: one row per kind, in the order kinds apply (content edits, then form, then frame lines),
with its parameters and the few functions in which kinds differ: ``clean`` (validate and normalise the
parameters), ``describe``, ``done`` (the text already satisfies the rule), ``fix``, and where the default does
not fit, ``opportunity`` (the draft offered the chance; default: not done) and ``followed`` (the user made the fix:
True, left it: False, the edit tells nothing: None; default: done after, given the chance). Each row makes a
frozen dataclass whose fields are the parameters (``ReplacePhrase("utilize", "use")``). ``apply`` never touches
text the rule does not match, and applying twice changes nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, make_dataclass, replace
from typing import Callable, ClassVar

from rapidfuzz import fuzz

from redline import text as tx

MAX_TEXT = 200          # characters of any text parameter (a user may PATCH it)
MAX_PHRASE_WORDS = 12   # a phrase to delete or text to append
LIST_MARKERS = ("-", "*", "•")


@dataclass(frozen=True)
class Rule:
    """Base of the rule kinds; see ``agent.rules`` for mining, evidence and application."""

    kind: ClassVar[str] = ""
    rank: ClassVar[int] = 0                   # the kind's row in KINDS: the order rules apply in
    text_field: ClassVar[str | None] = None   # the parameter a user edits as the rule's "text"
    # a word choice (replace or delete a phrase) rather than a shape of the whole text (a frame line, a format, a
    # length): writers make one-off word changes all the time, so one edit is never evidence enough for it
    word_choice: ClassVar[bool] = False

    def __post_init__(self):
        for name, value in self.clean(**self.params).items():
            object.__setattr__(self, name, value)

    @staticmethod
    def clean(**params) -> dict:
        return params

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

    # -- behaviour (the table's functions) ------------------------------------------------------------
    def describe(self) -> str:
        raise NotImplementedError

    def done(self, text: str) -> bool:
        """The text already satisfies the rule."""
        raise NotImplementedError

    def fix(self, text: str) -> str:
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
        return self.fix(text) if self.opportunity(text) else text


def _kind(name: str, kind: str, params: list = (), *, clean: Callable[..., dict] | None = None,
          text: str | None = None, word_choice: bool = False, **behaviour: Callable) -> type[Rule]:
    """One row of the table: the dataclass ``name`` of ``kind`` with fields ``params`` and the given functions
    (each takes the rule first, as a method does)."""
    namespace = {"kind": kind, "text_field": text, "word_choice": word_choice, "__module__": __name__, **behaviour}
    if clean is not None:
        namespace["clean"] = staticmethod(clean)
    return make_dataclass(name, params, bases=(Rule,), frozen=True, namespace=namespace)


# -- parameters --------------------------------------------------------------------------------------

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


def _limit(n: object) -> dict:
    if isinstance(n, str) and n.strip().isdigit():
        n = int(n.strip())
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10_000:
        raise ValueError("n must be a whole number from 1 to 10000")
    return {"n": n}


def _replacement(old: object, new: object) -> dict:
    old = _clean_text(old, "old phrase", words=6)
    new = _clean_text(new, "new phrase", words=6)
    if tx.norm(old) == tx.norm(new) or not tx.norm(old):
        raise ValueError("a replacement must change the words")
    if re.search(tx.phrase_pattern(old), new, re.I):
        raise ValueError(f"the new phrase {new!r} contains the old one {old!r}")
    return {"old": old, "new": new}


def _deletion(phrase: object) -> dict:
    phrase = _clean_text(phrase, "phrase", words=MAX_PHRASE_WORDS).rstrip(".!?,;:… ")
    if len(tx.norm(phrase).split()) < 2:
        raise ValueError("a phrase to delete has at least two words")
    return {"phrase": phrase}


def _marker(marker: object) -> dict:
    marker = str(marker).strip()
    if marker not in LIST_MARKERS:
        raise ValueError(f"marker must be one of {', '.join(LIST_MARKERS)}")
    return {"marker": marker}


# -- content ---------------------------------------------------------------------------------------

def _positional_lower(phrase: str) -> str:
    """'However' -> 'however' (the capital only marked a sentence start), but 'I am', 'OP' stay."""
    first = phrase.split()[0] if phrase.split() else ""
    if first[:1].isupper() and first[1:] == first[1:].lower() and not re.match(r"^I(?:['’]\w+)?$", first):
        return phrase[:1].lower() + phrase[1:]
    return phrase


def _phrase(phrase: str) -> re.Pattern:
    return re.compile(tx.phrase_pattern(phrase), re.I)


def _replacement_followed(rule, draft: str, edited: str) -> bool | None:
    if rule.done(draft):
        return None
    if not rule.done(edited):
        return False
    new = _phrase(rule.new)
    # the old phrase is gone: a fix if the new one came in, else its sentence went (no evidence)
    return True if len(new.findall(edited)) > len(new.findall(draft)) else None


def _replace(rule, text: str) -> str:
    raise_first = rule.old[:1].islower()

    def sub(m: re.Match) -> str:
        if raise_first and m.group(0)[:1].isupper() and rule.new[:1].islower():
            return rule.new[:1].upper() + rule.new[1:]
        return rule.new
    return _phrase(rule.old).sub(sub, text)


_LEFT_CLAUSE = re.compile(r"[,;:][ \t]*\Z")
_RIGHT = re.compile(rf"[ \t]*([{tx.END_MARKS},;:]+|(?=\n)|$)")  # a phrase's end: its sentence's or clause's


def _deletable(phrase: str, text: str) -> list[tuple[int, int, int | None]]:
    """``(start, end, capitalise_at)`` of each deletable occurrence of ``phrase``: a whole sentence, a leading
    clause ("To be honest, ...") or a trailing clause (", I hope this helps.") — never a cut out of the middle of a
    clause, which would leave it dangling."""
    spans = []
    for m in _phrase(phrase).finditer(text):
        before, right = text[:m.start()], _RIGHT.match(text, m.end())
        if not right:
            continue
        punct = right.group(1)[:1]
        if tx.starts_sentence(text, m.start()):
            end = right.end()
            while end < len(text) and text[end] in " \t":
                end += 1
            # a whole sentence goes with its full stop; a leading clause with its comma
            spans.append((m.start(), end, m.start() if punct in (",", ";", ":") else None))
        elif (left := _LEFT_CLAUSE.search(before)) and punct != ":":
            spans.append((left.start(), right.start(1), None))
    return spans


def _deletion_followed(rule, draft: str, edited: str) -> bool | None:
    if not rule.opportunity(draft):
        return None
    pattern = _phrase(rule.phrase)
    if pattern.search(edited):
        return False
    # gone with the sentences around it to the end: the user cut the end, which says nothing about this phrase
    ds = tx.sentences(tx.body_of(draft))
    at = next((i for i, s in enumerate(ds) if pattern.search(s)), None)
    cut = max((i + 1 for i, s in enumerate(ds) if tx.survives(s, edited)), default=0)
    if at is not None and at >= cut and len(ds) - cut >= 2:
        return None
    return True


def _delete(rule, text: str) -> str:
    for start, end, cap in reversed(_deletable(rule.phrase, text)):
        text = text[:start] + text[end:]
        if cap is not None:
            text = tx.capitalise_at(text, start)
    # a list item left empty goes, and so does a paragraph
    text = re.sub(rf"(?m)^[ \t]*{tx.LIST_MARK}[ \t]*(?:\n|\Z)", "", text)
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


def _splittable(n: int, text: str) -> list[str]:
    """The body's sentences over ``n`` words that have a clause boundary to split at."""
    return [s for s in tx.sentences(tx.body_of(text)) if len(tx.words(s)) > n and tx.split_points(s.split())]


def _split_followed(rule, draft: str, edited: str) -> bool | None:
    """Each long sentence the rule would split: left whole is a contradiction; split by the user (its words still
    there, no longer one sentence) is support; rewritten or deleted says nothing."""
    long = _splittable(rule.n, draft)
    if not long:
        return None
    body = tx.body_of(edited)
    es = [tx.norm(e) for e in tx.sentences(body)]
    if any(fuzz.ratio(tx.norm(s), e) >= 90 for s in long for e in es):  # one sentence still, edited lightly or not
        return False
    return True if any(tx.survives(s, body) for s in long) else None


def _sentences_followed(rule, draft: str, edited: str) -> bool | None:
    """Kept more sentences than the limit: a contradiction. Cut the end down to exactly the limit: support; cut
    further than the limit asks: a contradiction (the cut is not this limit's). No cut at the end: nothing said."""
    if not rule.opportunity(draft):
        return None
    kept = len(_own(draft, edited))
    if kept > rule.n:
        return False
    if _cut(draft, edited) is None:
        return None
    return kept == rule.n


def _words_followed(rule, draft: str, edited: str) -> bool | None:
    """Kept more words than the limit: a contradiction. Cut the end so that the next sentence would not have
    fitted: support; cut further than the limit asks: a contradiction. No cut at the end: nothing said."""
    if not rule.opportunity(draft):
        return None
    kept = sum(len(tx.words(s)) for s in _own(draft, edited))
    if kept > rule.n:
        return False
    cut = _cut(draft, edited)
    if cut is None:
        return None
    return kept + len(tx.words(cut[0])) > rule.n


def _first_words(n: int, body: str) -> str:
    """``body`` cut after the last whole sentence within ``n`` words (a first sentence over the limit stays whole)."""
    kept, count = [], 0
    for s in tx.sentences(body):
        w = len(tx.words(s))
        if kept and count + w > n:
            break
        kept.append(s)
        count += w
    return body if kept == tx.sentences(body) else tx.layout(body, kept)


def _items(text: str) -> list[str]:
    return [ln for ln in tx.lines(tx.body_of(text)) if ln.strip()]


def _list_opportunity(rule, draft: str) -> bool:
    return bool(tx.sentences(tx.body_of(draft))) and not rule.done(draft)


_QA_LINE = re.compile(r"^(Q|A):[ \t]*(.*)$")


def _qa_lines(text: str) -> list[tuple[str, str]] | None:
    """The body's non-empty lines as ``(label, text)`` when they alternate Q:/A: (Q first, an answer each); else
    None."""
    found = [_QA_LINE.match(ln.strip()) for ln in tx.lines(tx.body_of(text)) if ln.strip()]
    if len(found) < 2 or len(found) % 2 or not all(found):
        return None
    labels = [m.group(1) for m in found]
    if labels != ["Q", "A"] * (len(found) // 2):
        return None
    return [(m.group(1), m.group(2).strip()) for m in found]


def _questions(questions: object) -> dict:
    """The user's questions, one per line (a user may PATCH them as text with one question per line)."""
    if not isinstance(questions, str):
        raise ValueError("questions must be text, one question per line")
    qs = [q.strip() for q in questions.replace(" / ", "\n").splitlines() if q.strip()]
    if not qs or len(qs) > 8:
        raise ValueError("questions must be 1 to 8 lines")
    for q in qs:
        _clean_text(q, "question", words=MAX_PHRASE_WORDS)
    return {"questions": "\n".join(qs)}


def _as_questions_and_answers(questions: list[str], body: str) -> str:
    """The body's sentences in order under the user's questions, as evenly as they go (fewer sentences than
    questions: the first questions only). A sentence that is one of the questions is not an answer: the generator
    writes the questions of a preference as the draft, and the draft would say them twice."""
    asked = {tx.norm(q) for q in questions}
    sents = [s for s in tx.sentences(body) if tx.norm(s) not in asked]
    if not sents:
        return body
    groups = min(len(questions), len(sents))
    size = -(-len(sents) // groups)
    out = []
    for i in range(groups):
        chunk = sents[i * size:(i + 1) * size]
        if chunk:
            out += [f"Q: {questions[i]}", "A: " + " ".join(chunk)]
    return "\n".join(out)


# -- frame lines -----------------------------------------------------------------------------------

def _ends_with(ending: str, text: str) -> bool:
    want = [t.lower() for t in tx.PHRASE_TOKEN.findall(ending)]
    head, body, _ = tx.split_frame(text)
    # a text that is all frame ("TL;DR: ... How would you feel?") ends where its head ends
    have = [t.lower() for t in tx.PHRASE_TOKEN.findall(body if body.strip() else "\n".join(head))]
    return have[-len(want):] == want


def _without_edge_sentence(line: str, text: str, *, last: bool) -> str:
    """``text`` without its first (or ``last``) sentence when that sentence is ``line`` written inside a longer line
    of text: a frame line added above (below) it would otherwise say the same sentence twice. A line that is only
    that sentence, or a list item, stays as it is."""
    rows = text.split("\n")
    at = next((i for i in (range(len(rows) - 1, -1, -1) if last else range(len(rows))) if rows[i].strip()), None)
    if at is None or tx.MARKER.match(rows[at]):
        return text
    row = rows[at]
    pieces = tx.sentence_pieces(row)
    edge = pieces[-1] if last else pieces[0]
    if len(pieces) < 2 or tx.norm(edge) != tx.norm(line):
        # an end the sentence reading does not take for one ('next? 🚀✨ asks ...': no capital follows) still ends
        # an opening line's sentence where the row starts with the line as written and white space follows
        if last or not _opens_row(line, row.strip()):
            return text
        edge = line
    rows[at] = row[:row.rindex(edge)].rstrip() if last else row[row.index(edge) + len(edge):].lstrip()
    return "\n".join(rows)


def _opens_row(line: str, row: str) -> bool:
    return (line[-1:] in tx.END_MARKS and row.startswith(line) and len(row) > len(line) + 1
            and row[len(line)].isspace() and bool(tx.WORD.search(row[len(line):])))


def _without_copies(line: str, text: str) -> str:
    """``text`` without the lines, list items and sentences inside longer lines that say ``line`` (same words),
    wherever they stand: a frame line the rule puts at an edge moves there instead of being written twice (a
    numbered list is numbered again). A labelled line ('Subject: ...', 'TL;DR: ...') keeps its first sentence, which
    holds the label; Q:/A: lines stay."""
    want, rows, kept, dropped_item = tx.norm(line), text.split("\n"), [], False
    for row in rows:
        item = tx.LIST_ITEM.match(row)
        if item and tx.norm(row[item.end():]) == want:
            dropped_item = True
        elif not row.strip() or item or tx.MARKER.match(row):
            kept.append(row)
        elif tx.norm(row) != want:
            pieces = tx.sentence_pieces(row)
            first = pieces[:1] if tx.LINE_LABEL.match(row.strip()) else []
            rest = first + [p for p in pieces[len(first):] if tx.norm(p) != want]
            kept.append(row if len(rest) == len(pieces) else " ".join(rest))
    if kept == rows:
        return text
    if dropped_item:
        kept = _numbered_again(kept)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")


def _numbered_again(rows: list[str]) -> list[str]:
    """Each run of numbered items (blank lines between them allowed) numbered 1, 2, 3, ... again."""
    out, n = [], 0
    for row in rows:
        if m := tx.NUMBER.match(row):
            n += 1
            row = f"{row[:m.start(1)]}{n}{row[m.end(1):]}"
        elif row.strip():
            n = 0
        out.append(row)
    return out


def _frame_apply(rule, text: str) -> str:
    """A frame line's ``apply``: also where the text has the line at its edge and a copy of it elsewhere, which a
    later rule can make (an opening line splitting 'Hi there, thank you so much for your time.' leaves a copy of a
    closing line 'Thank you so much for your time,' at the end): the fix moves the copy instead of keeping both."""
    if rule.opportunity(text):
        return rule.fix(text)
    rows = tx.lines(text)
    n = len(rule.line.splitlines())
    rest = "\n".join(rows[:-n] if rule.kind == "closing_line" else rows[n:])
    return rule.fix(text) if _without_copies(rule.line, rest) != rest else text


def _append(ending: str, body: str) -> str:
    marker = tx.list_marker(body)
    if marker == "1.":
        return f"{body}\n{len(tx.lines(body)) + 1}. {ending}"
    if marker:
        return f"{body}\n{marker} {ending}"
    return f"{body} {ending}".strip()


def _closing_removed(rule, draft: str, edited: str) -> bool | None:
    if rule.done(draft):
        return None
    kept = {tx.norm(ln) for ln in tx.lines(edited)[-3:]}
    closing = [ln for ln in tx.split_frame(draft)[2] if tx.CLOSING.match(ln.strip())]
    return rule.done(edited) and not any(tx.norm(ln) in kept for ln in closing)


def _without_closing(text: str) -> str:
    head, body, _ = tx.split_frame(text)
    return tx.join_frame(head, body, [])


def _ends_with_lines(line: str, text: str) -> bool:
    want = line.splitlines()
    return [tx.norm(ln) for ln in tx.lines(text)[-len(want):]] == [tx.norm(ln) for ln in want]


def _close_with(line: str, text: str) -> str:
    if "\n" not in line:
        text = _without_edge_sentence(line, _without_copies(line, text), last=True)
    head, body, tail = tx.split_frame(text)
    if tx.is_closing(tail):
        tail = []          # the line replaces another sign-off
    return tx.join_frame(head, tx.join_frame([], body, tail), line.splitlines())


def _starts_with(line: str, text: str) -> bool:
    first = tx.lines(text)[:1]
    return bool(first) and tx.norm(first[0]) == tx.norm(line) and first[0].strip()[-1:] == line[-1:]


def _open_with(line: str, text: str) -> str:
    head, body, tail = tx.split_frame(_without_edge_sentence(line, _without_copies(line, text), last=False))
    if tx.GREETING.match(line):
        # a greeting replaces the draft's greeting: a greeting line goes; "Hi Sam, I hope ..." at the start of the
        # first line loses its greeting (no second greeting under the new one)
        head = [h for h in head if not tx.is_head(h) or not tx.GREETING.match(h.strip())]
        if head and (m := tx.INLINE_GREETING.match(head[0])):
            head[0] = tx.capitalise_at(head[0][m.end():], 0)
        elif not head and (m := tx.INLINE_GREETING.match(body)):
            body = tx.capitalise_at(body[m.end():], 0)
        head = [h for h in head if h.strip()]
    head = [h for h in head if tx.norm(h) != tx.norm(line)]
    return tx.join_frame([line] + head, body, tail)


# A templated opening line: a shape whose words come from the text it heads (``tx.line_template``), made again from
# each new text: a heading of its first sentence's first ``words`` words, or (``words`` 0) that sentence.
MAX_TITLE_WORDS = 12


def _template(prefix: object, words: object) -> dict:
    prefix = "" if prefix is None else " ".join(str(prefix).split())
    if prefix and ((m := tx.LINE_LABEL.match(prefix + " x")) is None or m.group(0) != prefix):
        raise ValueError("prefix must be a heading mark or a short label ending with ':', e.g. '#' or 'TL;DR:'")
    words = _limit(words)["n"] if words not in (0, "0") else 0
    if words > MAX_TITLE_WORDS:
        raise ValueError(f"a title has at most {MAX_TITLE_WORDS} words")
    return {"prefix": prefix, "words": words}


def _template_describe(rule) -> str:
    if rule.words:
        if rule.prefix.startswith("#"):
            return f"start with a short heading ('{rule.prefix} …') naming the topic"
        if rule.prefix:
            return f"start with a short '{rule.prefix} …' line naming the topic"
        return "start with a short title line naming the topic"
    if rule.prefix:
        return f"begin with a '{rule.prefix}' line summarising the text"
    return "start with a one-line summary of the text"


def _rule_label(rule, line: str) -> str | None:
    """The label ``line`` opens with ('' for none) when it is the rule's own: the same words, and a heading mark only
    where the rule has one (``norm`` reads '#' as no word at all); else None."""
    label = m.group(0) if (m := tx.LINE_LABEL.match(line)) else ""
    same = tx.norm(label) == tx.norm(rule.prefix) and label.startswith("#") == rule.prefix.startswith("#")
    return label if same else None


def _template_line(rule, text: str) -> str | None:
    """The first line when it has the rule's shape (its label, then a title or a sentence), else None."""
    head = tx.split_frame(text)[0]
    first = head[0].strip() if head else ""
    if not first or tx.GREETING.match(first):
        return None
    label = _rule_label(rule, first)
    if label is None:
        return None
    n = len(tx.words(first[len(label):]))
    return first if (n and n <= MAX_TITLE_WORDS if rule.words else n >= 3) else None


def _template_followed(rule, draft: str, edited: str) -> bool | None:
    if not rule.opportunity(draft):
        return None
    line = _template_line(rule, edited)
    if line is None:
        return False
    # the line's words come from the text; another line of that shape is the user's fixed line: it tells nothing
    return True if tx.line_template(line, draft + "\n" + tx.body_of(edited)) is not None else None


def _open_with_template(rule, text: str) -> str:
    head, body, tail = tx.split_frame(text)
    sentences = tx.sentences(body)
    if not sentences:
        return text
    head = [h for h in head if not (rule.prefix and h.strip().startswith(rule.prefix))]
    if rule.prefix and not rule.words and _rule_label(rule, sentences[0]):
        # the text already opens with the label, run into its first paragraph ('In short: I'll ... places. So my
        # ...'): that sentence is the line. Labelling it again made a body that opens labelled too, which no
        # frame reads as a head, so every pass labelled it once more ('In short: In short: In short: ...').
        return tx.join_frame([sentences[0]] + head, tx.layout(body, sentences[1:]), tail)
    title = " ".join(tx.words(sentences[0])[:rule.words]).rstrip(".,;:!?") if rule.words else sentences[0]
    return tx.join_frame([f"{rule.prefix} {title}".strip()] + head, body, tail)


# -- the table -------------------------------------------------------------------------------------

ReplacePhrase = _kind(
    "ReplacePhrase", "replace_phrase", [("old", str), ("new", str)], clean=_replacement, text="new", word_choice=True,
    describe=lambda r: f"replace '{r.old}' with '{r.new}'", done=lambda r, t: not _phrase(r.old).search(t),
    followed=_replacement_followed, fix=_replace)
DeletePhrase = _kind(
    "DeletePhrase", "delete_phrase", [("phrase", str)], clean=_deletion, text="phrase", word_choice=True,
    describe=lambda r: f"delete '{r.phrase}'", done=lambda r, t: not _deletable(r.phrase, t),
    opportunity=lambda r, t: bool(_deletable(r.phrase, t)), followed=_deletion_followed, fix=_delete)
MaxSentenceWords = _kind(
    "MaxSentenceWords", "max_sentence_words", [("n", int)], clean=_limit, text="n",
    describe=lambda r: f"sentences of at most {r.n} words", done=lambda r, t: not _splittable(r.n, t),
    followed=_split_followed,
    fix=lambda r, t: _on_body(t, lambda body: tx.map_sentences(body, lambda s: tx.split_sentence(s, r.n))))
MaxSentences = _kind(
    "MaxSentences", "max_sentences", [("n", int)], clean=_limit, text="n",
    describe=lambda r: f"at most {r.n} sentence{'s' if r.n != 1 else ''}",
    done=lambda r, t: len(tx.sentences(tx.body_of(t))) <= r.n, followed=_sentences_followed,
    fix=lambda r, t: _on_body(t, lambda body: tx.layout(body, tx.sentences(body)[:r.n])))
MaxWords = _kind(
    "MaxWords", "max_words", [("n", int)], clean=_limit, text="n",
    describe=lambda r: f"at most {r.n} words", done=lambda r, t: len(tx.words(tx.body_of(t))) <= r.n,
    followed=_words_followed, fix=lambda r, t: _on_body(t, lambda body: _first_words(r.n, body)))
BulletList = _kind(
    "BulletList", "bullets", [("marker", str, field(default="-"))], clean=_marker, text="marker",
    describe=lambda r: f"bullet points ('{r.marker} '), one per line",
    done=lambda r, t: bool(items := _items(t)) and all(ln.lstrip().startswith(r.marker + " ") for ln in items),
    opportunity=_list_opportunity,
    fix=lambda r, t: _on_body(t, lambda body: "\n".join(f"{r.marker} {s}" for s in tx.sentences(body))))
NumberedList = _kind(
    "NumberedList", "numbered", describe=lambda r: "numbered points, one per line",
    done=lambda r, t: bool(items := _items(t)) and all(re.match(rf"^{i}\. ", ln.lstrip())
                                                        for i, ln in enumerate(items, 1)),
    opportunity=_list_opportunity,
    fix=lambda r, t: _on_body(t, lambda body: "\n".join(f"{i}. {s}" for i, s in enumerate(tx.sentences(body), 1))))
QuestionAnswer = _kind(
    "QuestionAnswer", "question_answer", [("questions", str)], clean=_questions, text="questions",
    describe=lambda r: "question-answer format: " + " / ".join(f"'Q: {q}'" for q in r.questions.splitlines()),
    done=lambda r, t: _qa_lines(t) is not None, opportunity=_list_opportunity,
    fix=lambda r, t: _on_body(t, lambda body: _as_questions_and_answers(r.questions.splitlines(), body)),
    # one rule per user whatever questions an edit used (a short draft fills only the first ones); the user's
    # questions as first seen, theirs to rewrite
    key=property(lambda r: "question_answer"))
NoExclamation = _kind(
    "NoExclamation", "no_exclamation", describe=lambda r: "no exclamation marks",
    done=lambda r, t: "!" not in tx.body_of(t),
    fix=lambda r, t: _on_body(t, lambda body: re.sub(r"!+", ".", re.sub(r"\?!+|!+\?", "?", body))))
EndText = _kind(
    "EndText", "end_text", [("ending", str)], text="ending",
    clean=lambda ending: {"ending": _clean_text(ending, "ending", words=MAX_PHRASE_WORDS)},
    describe=lambda r: f"end with '{r.ending}'", done=lambda r, t: _ends_with(r.ending, t),
    fix=lambda r, t: _on_body(t, lambda body: _append(r.ending, body)))
RemoveClosing = _kind(
    "RemoveClosing", "remove_closing", describe=lambda r: "no sign-off or closing line",
    done=lambda r, t: not tx.is_closing(tx.split_frame(t)[2]), followed=_closing_removed,
    fix=lambda r, t: _without_closing(t))
ClosingLine = _kind(
    "ClosingLine", "closing_line", [("line", str)], text="line",
    clean=lambda line: {"line": _clean_text(line, "line", words=tx.FRAME_LINE_WORDS, lines=2)},
    describe=lambda r: f"end with the line '{r.line.replace(chr(10), ' / ')}'",
    done=lambda r, t: _ends_with_lines(r.line, t), fix=lambda r, t: _close_with(r.line, t), apply=_frame_apply)
OpeningLine = _kind(
    "OpeningLine", "opening_line", [("line", str)], text="line",
    clean=lambda line: {"line": _clean_text(line, "line", words=tx.FRAME_LINE_WORDS)},
    describe=lambda r: f"start with the line '{r.line}'", done=lambda r, t: _starts_with(r.line, t),
    fix=lambda r, t: _open_with(r.line, t), apply=_frame_apply)
OpeningTemplate = _kind(
    "OpeningTemplate", "opening_template", [("prefix", str), ("words", int)], clean=_template, text="prefix",
    describe=_template_describe, done=lambda r, t: _template_line(r, t) is not None,
    followed=_template_followed, fix=_open_with_template)

KINDS: dict[str, type[Rule]] = {cls.kind: cls for cls in (
    ReplacePhrase, DeletePhrase, MaxSentenceWords, MaxSentences, MaxWords, BulletList, NumberedList, QuestionAnswer,
    NoExclamation,
    EndText, RemoveClosing, ClosingLine, OpeningLine, OpeningTemplate)}
for _rank, _cls in enumerate(KINDS.values()):
    _cls.rank = _rank


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


# ``describe`` read back: a preference item in the words the rules describe themselves with, as the rule it states.
# Word choices (replace, delete) are left out: what holds for them is whether one text has a phrase, which says
# nothing of another text.
_DESCRIBED: list[tuple[re.Pattern, Callable[[re.Match], Rule]]] = [(re.compile(p, re.I), make) for p, make in [
    (r"sentences of at most (\d+) words", lambda m: MaxSentenceWords(n=int(m[1]))),
    (r"at most (\d+) sentences?", lambda m: MaxSentences(n=int(m[1]))),
    (r"at most (\d+) words", lambda m: MaxWords(n=int(m[1]))),
    (r"bullet points \('(\S{1,3}) '\), one per line", lambda m: BulletList(marker=m[1])),
    (r"numbered points, one per line", lambda m: NumberedList()),
    (r"no exclamation marks", lambda m: NoExclamation()),
    (r"no sign-off or closing line", lambda m: RemoveClosing()),
    (r"end with the line '(.+)'", lambda m: ClosingLine(line=m[1].replace(" / ", "\n"))),
    (r"start with the line '(.+)'", lambda m: OpeningLine(line=m[1])),
    (r"end with '(.+)'", lambda m: EndText(ending=m[1])),
    (r"begin with a '(.+)' line summarising the text", lambda m: OpeningTemplate(prefix=m[1], words=0)),
    (r"start with a one-line summary of the text", lambda m: OpeningTemplate(prefix="", words=0)),
    (r"start with a short heading \('(#+) …'\) naming the topic",
     lambda m: OpeningTemplate(prefix=m[1], words=MAX_TITLE_WORDS)),
    (r"start with a short '(.+) …' line naming the topic",
     lambda m: OpeningTemplate(prefix=m[1], words=MAX_TITLE_WORDS)),
    (r"start with a short title line naming the topic", lambda m: OpeningTemplate(prefix="", words=MAX_TITLE_WORDS)),
]]


def rule_from_description(item: str) -> Rule | None:
    """The rule whose ``describe`` reads ``item`` (a heading's word count, which the words do not give, is the
    most a title may have), or None: another wording, a word choice, or parameters no rule takes.

    >>> rule_from_description("at most 30 words")
    MaxWords(n=30)
    >>> rule_from_description("replace 'movie' with 'film'") is None
    True
    """
    item = " ".join(item.split()).strip().rstrip(".")
    for pattern, make in _DESCRIBED:
        if (m := pattern.fullmatch(item)) is not None:
            try:
                return make(m)
            except ValueError:
                return None
    return None
