"""How redline reads a text: the one definition of its tokens, words, sentences, lines, frame (greeting,
heading and sign-off lines around a body) and clause boundaries, and the small edits that keep that reading.

Every reader uses it: the edit cost (``agent.editcost``), the edit rules (``agent.rules``), the evidence that
preference inference quotes (``agent.edit_analysis``), the reward's features (``policies.edit_features``), the
inference prompts' answers (``agent.prompts``) and the simulated users of the evaluation (``evals.ops``), so the
same text has the same sentences, words and frame lines for all of them. Imports nothing of redline.

>>> sentences("Dr. Lee met the U.S. team at 3.5 km. They won!")
['Dr. Lee met the U.S. team at 3.5 km.', 'They won!']
"""

from __future__ import annotations

import re

from rapidfuzz import fuzz

__all__ = [
    "TOKEN", "tokens", "WORD", "PHRASE_TOKEN", "words", "bare_words", "norm", "phrase_pattern",
    "EMOJI", "HASHTAG", "LIST_MARK", "LIST_ITEM", "BULLET", "NUMBER", "MARKER",
    "END_MARKS", "lines", "sentences", "sentence_pieces", "starts_sentence", "end_sentence",
    "GREETING", "INLINE_GREETING", "CLOSING", "is_head", "is_closing", "split_frame", "join_frame", "body_of",
    "FRAME_LINE_WORDS", "frame_lines_only",
    "LINE_LABEL", "content_words", "line_template",
    "DASHES", "CLAUSE_WORDS", "split_points", "split_sentence",
    "list_marker", "layout", "map_sentences", "survives", "own_sentences", "capitalise_at",
]

# -- tokens and words ------------------------------------------------------------------------------------

# The edit cost's token: a run of word characters (any script) or one mark that is neither a word character nor
# white space, as the PRELUDE protocol counts edits: "Don't stop!" -> Don ' t stop !
TOKEN = re.compile(r"\w+|[^\w\s]")
# A word as written: contractions stay one word ("Don't"), the marks around it are not part of it.
WORD = re.compile(r"\w+(?:['’]\w+)*")
# What a rule quotes and aligns: words as written and each mark ("Don't stop !"): a user who replaces "I am" with
# "I'm" replaced two words with one, not "am" with "m".
PHRASE_TOKEN = re.compile(WORD.pattern + r"|[^\w\s]")
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\u2B50\u2B06\u2934\u2935]")
HASHTAG = re.compile(r"(?<!\w)#\w+")
_WORD_PIECE = re.compile(r"(?<!\S)(?!#)\S*\w\S*")  # between white space, a word character, not a hashtag


def tokens(text: str) -> list[str]:
    """The edit cost's tokens of ``text``.

    >>> tokens("Don't stop!")
    ['Don', "'", 't', 'stop', '!']
    """
    return TOKEN.findall(text)


def words(text: str) -> list[str]:
    """The words a reader counts (length limits, sentence lengths): the pieces between white space that have a
    letter or digit, not hashtags; "state-of-the-art", "3.5" and "don't" are one word each, an emoji none.

    >>> words("Don't stop! 🚀 It's 3.5 km. #news")
    ["Don't", 'stop!', "It's", '3.5', 'km.']
    """
    return _WORD_PIECE.findall(text)


_BARE_WORD = re.compile(r"(?<!\S)(?!#)[^\w\s]*(\w\S*?)[^\w\s]*(?!\S)")


def bare_words(text: str) -> list[str]:
    """The same words as ``words``, without the marks around them (for word lengths and word lists).

    >>> bare_words('"Stop!" (Don’t) 3.5 km. #news')
    ['Stop', 'Don’t', '3.5', 'km']
    """
    return _BARE_WORD.findall(text)


def norm(text: str) -> str:
    """Lower-case words only, single spaces: the form keys and comparisons use."""
    return " ".join(w.lower() for w in WORD.findall(text))


def phrase_pattern(phrase: str) -> str:
    """A regex for ``phrase`` between word boundaries, any run of spaces between its words."""
    parts = [re.escape(p) for p in phrase.split()]
    return r"(?<![\w'’])" + r"\s+".join(parts) + r"(?![\w'’])"


# -- lines and sentences ---------------------------------------------------------------------------------

LIST_MARK = r"(?:[-*•]|\d+[.)])"                       # a bullet or a number, as a regex to build others from
LIST_ITEM = re.compile(rf"^\s*{LIST_MARK}\s+")
BULLET = re.compile(r"^\s*([-*•])\s+")
NUMBER = re.compile(r"^\s*(\d+)[.)]\s+")
MARKER = re.compile(rf"^\s*(?:{LIST_MARK}\s+|[QA]:\s*)")  # a list marker or Q:/A: label before a line's text

END_MARKS = ".!?…؟۔"           # end a sentence when white space and a sentence's first character follow
_WIDE_ENDS = "。！？"          # end one where they stand (Chinese and Japanese put no space after them)
_CLOSERS = "\"'”’)]）」』"        # a closing quote or bracket after the end stays with its sentence
_OPENERS = "\"'“‘([（「『"
_END = re.compile(rf"[{END_MARKS}{_WIDE_ENDS}]+[{re.escape(_CLOSERS)}]*")   # where a sentence may end
_EMOJI_AFTER = re.compile(rf"(?:\s*{EMOJI.pattern}+)*(?=\s)")  # emoji after the end stay with the sentence
_NEXT = re.compile(rf"\s*[{re.escape(_OPENERS)}]*(\S)")  # the first character of what follows
# Words whose full stop ends no sentence: titles before a name, and a few abbreviations before a number or name.
_ABBREVIATIONS = frozenset(
    "mr mrs ms mx dr prof rev hon st mt gen col capt lt sgt gov sen rep jr sr vs cf approx fig eq vol e.g i.e "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split())
_ACRONYM = re.compile(r"^(?:[A-Z]\.)+[A-Z]$|^[A-HJ-Z]$")  # U.S., U.K. and initials (J. Smith; not "I")


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


def _sentence_end(line: str, end: re.Match) -> int | None:
    """Where the sentence ends if the end marks ``end`` in ``line`` end one, else None. A wide mark always ends
    one; the others when white space follows, then (after opening quotes or brackets) a character that starts a
    sentence: a capital, a letter of a script without case, a digit, '#', '-' or '*'. A single full stop after an
    abbreviation ("Dr.", "e.g.", "U.S.", "J.") ends none."""
    marks = end.group()
    if marks[0] in _WIDE_ENDS:
        return end.end()
    after = _EMOJI_AFTER.match(line, end.end())
    first = m.group(1) if after and (m := _NEXT.match(line, after.end())) else ""
    if not first or not (first.isdigit() or first in "#-*" or (first.isalpha() and not first.islower())):
        return None
    if marks[0] == "." and (len(marks) == 1 or marks[1] not in END_MARKS):  # one full stop (not "..." or ".!")
        before = line[max(0, end.start() - 12):end.start()].split()  # abbreviations are short
        word = before[-1].lstrip(_OPENERS) if before else ""
        if word.lower() in _ABBREVIATIONS or _ACRONYM.match(word):
            return None
    return after.end()


def sentence_pieces(line: str) -> list[str]:
    """The sentences of one line exactly as written: closing quotes and brackets, and emoji after the end mark,
    stay with their sentence.

    >>> sentence_pieces('He said "Go." Then he left! 🎉 Мы тоже. 我们走了。好的。')
    ['He said "Go."', 'Then he left! 🎉', 'Мы тоже.', '我们走了。', '好的。']
    """
    pieces, start = [], 0
    for end in _END.finditer(line):
        if end.start() >= start and (stop := _sentence_end(line, end)) is not None:
            pieces.append(line[start:stop].strip())
            start = stop
    pieces.append(line[start:].strip())
    return [p for p in pieces if p]


def sentences(text: str) -> list[str]:
    """Sentences of ``text``, each line read on its own, without list markers and Q:/A: labels."""
    out = []
    for line in lines(text):
        line = MARKER.sub("", line).strip()
        if line:
            out.extend(sentence_pieces(line))
    return out


_LINE_START = re.compile(rf"(?:\A|\n)[ \t]*(?:{LIST_MARK}[ \t]+|[QA]:[ \t]*)?\Z")


def starts_sentence(text: str, i: int) -> bool:
    """Whether a sentence starts at ``text[i]``: at the start of a line (after its list marker or label), or
    after the end of a sentence as ``sentences`` reads it."""
    before = text[:i]
    if _LINE_START.search(before):
        return True
    line = before[before.rfind("\n") + 1:] + text[i:i + 1]
    ends = [stop for end in _END.finditer(line) if (stop := _sentence_end(line, end)) is not None]
    return bool(ends) and not line[ends[-1]:-1].strip()


def end_sentence(sentence: str) -> str:
    """``sentence`` with a full stop unless it already ends like a sentence."""
    sentence = sentence.strip()
    return sentence if sentence[-1:] in END_MARKS + _WIDE_ENDS + ":" else sentence + "."


# -- the frame: greeting or heading lines on top, a sign-off below -----------------------------------------

_GREETING_WORDS = r"hi|hey|hello|dear|greetings|good (?:morning|afternoon|evening)"
GREETING = re.compile(rf"^(?:{_GREETING_WORDS})\b", re.I)
# A greeting at the start of a body sentence: "Hi Sam, I hope ..." (the name is at most 4 words).
INLINE_GREETING = re.compile(rf"^(?:{_GREETING_WORDS})\b(?:\s+[\w.'-]+){{0,4}}\s*[,!:]\s+", re.I)
CLOSING = re.compile(r"^(best|regards|kind regards|warm regards|best regards|sincerely|yours|thanks|thank you|"
                     r"many thanks|cheers|all the best|take care|talk soon)\b[^.?]*[,.!]?$", re.I)


def is_head(line: str) -> bool:
    """A heading, a TL;DR or a short greeting line ("Hi Sam,")."""
    s = line.strip()
    return (s.startswith("#") or s.upper().startswith("TL;DR")
            or (bool(GREETING.match(s)) and len(s.split()) <= 8 and s[-1:] in ",:!"))


def is_closing(tail: list[str]) -> bool:
    """One of the lines is a sign-off ("Best regards,", "Thanks for reading!")."""
    return bool(tail) and any(CLOSING.match(line.strip()) for line in tail)


def _labelled(line: str) -> bool:
    """A line that opens with a label of its own ("Subject: ...", "In short: ..."; not a Q:/A: line)."""
    return (m := LINE_LABEL.match(line.strip())) is not None and len(m.group(0)) > 2


# A summary line may sit above the subject line: at most this many labelled lines head a text.
LABELLED_LEAD_LINES = 2


def _labelled_lead(paragraphs: list[str]) -> int:
    """How many of the text's first lines (at most ``LABELLED_LEAD_LINES``) are labelled lines that head it
    ("Subject: ..." above the email, a "Summary: ..." line above that, with or without a blank line between): more
    follows, and what follows is not labelled too (a text of "Term: definition" lines has no frame, it is all body).
    0 for none."""
    top = [ln for p in paragraphs[:LABELLED_LEAD_LINES + 1] for ln in lines(p)][:LABELLED_LEAD_LINES + 1]
    n = 0
    while n < min(LABELLED_LEAD_LINES, len(top)) and _labelled(top[n]):
        n += 1
    return n if n and len(top) > n and not _labelled(top[n]) else 0


def split_frame(text: str, *, give_back: bool = True) -> tuple[list[str], str, list[str]]:
    """``(head_lines, body, tail_lines)``: greeting/heading/TL;DR lines, or up to ``LABELLED_LEAD_LINES`` first lines
    with a label of their own ("Summary: ..." over "Subject: ...") above text without one (or a short first
    paragraph of one line) on top; a sign-off (or a short last paragraph of one line) below. With ``give_back`` a
    short paragraph taken for a frame line is given back when nothing else is left for the body (a body cut to one
    short sentence stays the body); the simulated users read texts without it."""
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    head: list[str] = []
    guessed_head = False
    while paragraphs:
        first = lines(paragraphs[0])
        lead = 0 if head else _labelled_lead(paragraphs)
        if is_head(first[0]) or lead:
            for _ in range(max(1, lead)):  # line by line: a labelled lead may span paragraphs
                first = lines(paragraphs[0])
                head.append(first[0])
                rest = "\n".join(first[1:]).strip()
                paragraphs = ([rest] if rest else []) + paragraphs[1:]
            guessed_head = False
        elif len(paragraphs) > 1 and len(first) == 1 and len(first[0].split()) <= 10 and not MARKER.match(first[0]):
            head.append(first[0])  # a short line alone above more text, not a list item: a frame line
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
        elif len(paragraphs) > 1 and len(last) == 1 and len(last[0].split()) <= 10 and not MARKER.match(last[0]):
            tail, guessed_tail = last, True
        if tail:
            rest = "\n".join(last[:len(last) - len(tail)]).strip()
            paragraphs = paragraphs[:-1] + ([rest] if rest else [])
    if give_back and not paragraphs and guessed_tail:
        paragraphs, tail = ["\n".join(tail)], []
    elif give_back and not paragraphs and guessed_head:
        paragraphs = [head.pop()]
    elif give_back and not paragraphs and head and _labelled(head[-1]) and not head[-1].lstrip().startswith("#") \
            and len(words(head[-1])) > FRAME_LINE_WORDS:
        # a labelled sentence with nothing under it but a sign-off is what is left of the body ('In short: <the one
        # sentence a user kept>' above 'Thanks for reading!'): read as a frame line, it left no body to mine a
        # limit or a closing line from
        paragraphs = [head.pop()]
    return head, "\n\n".join(paragraphs).strip(), tail


def join_frame(head: list[str], body: str, tail: list[str]) -> str:
    # head lines share a paragraph only when each reads as a frame line by itself; a line taken for one because it
    # stood alone ("Once upon a time, ...") keeps a paragraph of its own, so split_frame reads the text back the same
    parts = [("\n" if all(is_head(h) for h in head) else "\n\n").join(head)] if head else []
    if body.strip():
        parts.append(body.strip())
    if tail:
        parts.append("\n".join(tail))
    return "\n\n".join(parts).strip()


def body_of(text: str) -> str:
    return split_frame(text)[1]


# A frame line (greeting, sign-off, heading, an opening or closing line a rule adds) has at most this many words; a
# longer line carries content even where it is a text's only line ('TL;DR: The text ...').
FRAME_LINE_WORDS = 10


def frame_lines_only(text: str) -> bool:
    """``text`` is only frame lines, nothing of a document: a greeting, a sign-off, a heading, a short labelled line
    ('Hey!', 'Thanks for reading!', '# FlauBERT: A Language Model for French'); a small generator given a
    preference for such lines sometimes writes them alone.

    >>> frame_lines_only("Hi friend,\\n\\nTalk soon,"), frame_lines_only("Hi friend,\\n\\nThe budget passed.")
    (True, False)
    """
    return not body_of(text).strip() and all(len(words(line)) <= FRAME_LINE_WORDS for line in lines(text))


# -- lines that change with the document ------------------------------------------------------------------

# What opens a templated line before the words of the document: a Markdown heading mark, or a short label with a
# colon ("TL;DR:", "In short:", "Subject:").
LINE_LABEL = re.compile(r"^(?:#{1,6}(?=\s)|(?:[\w;&'’.-]+[ \t]){0,2}[\w;&'’.-]*\w[\w;&'’.-]*:)(?=\s)")
# Words too common to say where a line's words came from.
_FUNCTION_WORDS = frozenset(
    "about above after again also been before being both could does doing down during each even ever from have "
    "having here into just like more most much must only other over same some such than that their them then there "
    "these they this those through under very were what when where which while will with would your yours upon".split())


def content_words(text: str) -> list[str]:
    """The words of ``text`` that can say where it came from: lower-case, at least four letters, not a function
    word ("what", "with", "your"), a plural's final s dropped ("roads" and "road" are one word)."""
    return [w[:-1] if w.endswith("s") and len(w) > 4 else w
            for w in (m.lower() for m in WORD.findall(text)) if len(w) >= 4 and w not in _FUNCTION_WORDS]


# A context with fewer distinct content words than this is a request ('Write a haiku about spring'), not a document
# a response draws on; one with more and a response that takes fewer than DRAWN_WORDS of them holds nothing of it.
# Measured on the drafts of the 2026-12-07 runs of 856e356 (Qwen2.5-Coder-0.5B; 240 of each method, summaries and
# emails, first 20 rounds x 3 seeds, shipped and held-out users): no-learning's took fewer than 3 in 4 (two loops of
# one subject line among them), cipher-5's in 30 and redline's in 27, the contentless ones ('Here's the story.',
# 'Hi friend, talk soon.', 'Ever wondered what comes next? #research') taking 0-2.
DOCUMENT_WORDS = 20
DRAWN_WORDS = 3


def ignores_document(text: str, document: str) -> bool:
    """``text`` takes fewer than 3 of the content words of ``document``, a document of 20 or more of them: a
    response that could have been written without reading it ('Here's the story.', 'I'm sorry, but I can't assist
    with that request.').

    >>> doc = ("The council voted to close the Elm Street library branch in March, citing repair costs of two "
    ...        "million dollars, falling visits since 2019, and a newer branch three miles away that opens longer "
    ...        "hours on weekends and holds most of the same collection.")
    >>> ignores_document("Here's the story.", doc), ignores_document("The council closes the library in March.", doc)
    (True, False)
    >>> ignores_document("Here's the story.", "Write a haiku about spring")
    False
    """
    document_words = set(content_words(document))
    return (len(document_words) >= DOCUMENT_WORDS
            and len(document_words.intersection(content_words(text))) < DRAWN_WORDS)


def line_template(line: str, source: str, *, share: float = 0.75) -> tuple[str, str] | None:
    """``(label, rest)`` when ``line`` is templated: a shape whose words come from ``source`` (the text it heads or
    ends), so the next document's line has other words: a heading or title of a few of its words, or a label
    followed by a sentence of them ("TL;DR: ..."). None for a fixed line, the same words every time (a greeting,
    a sign-off, a stock question): fewer than two content words, or fewer than ``share`` of them in ``source``.

    >>> line_template("TL;DR: The council approved the budget.", "The council met. It approved the budget.")
    ('TL;DR:', 'The council approved the budget.')
    >>> line_template("Ever wondered what comes next?", "The council met. It approved the budget.") is None
    True
    """
    line = line.strip()
    label = m.group(0) if (m := LINE_LABEL.match(line)) else ""
    rest = line[len(label):].strip()
    words = content_words(rest)
    if len(words) < 2:
        return None
    known = set(content_words(source))
    return (label, rest) if sum(w in known for w in words) >= share * len(words) else None


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
        if prev == "-" and "-" in (tokens[i - 3] if i >= 3 else None, tokens[i + 1] if i + 1 < len(tokens) else None):
            continue  # a compound written with spaced hyphens ('a 27 - year - old man'), not a clause dash
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


# -- layout: lists and paragraphs kept through an edit ---------------------------------------------------

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
