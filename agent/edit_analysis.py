"""What changed between a draft and the user's kept text, in words a preference can be made of.

The observations go into the preference-inference prompt (a small generator then has concrete evidence
to name) and stand in for the inferred preference when the generator's answer is unusable (it restated
the content instead of describing a style).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redline import text as tx

from .editcost import tokenize

__all__ = ["TextShape", "describe_edit", "edit_evidence", "item_holds", "looks_like_preference", "preference_items",
           "kept_items", "with_kept_items"]

_SECOND_PERSON = re.compile(r"\b(you|your|yours|yourself)\b", re.I)
_QA_LINE = re.compile(r"^\s*[QA]:\s", re.M)


@dataclass(frozen=True)
class TextShape:
    words: int
    sentences: int
    mean_sentence_words: float
    bullets: int
    numbered: int
    questions: int
    exclamations: int
    emojis: int
    greeting: bool
    closing: bool
    second_person: float
    heading: bool

    @classmethod
    def of(cls, text: str) -> "TextShape":
        lines = [line for line in text.splitlines() if line.strip()]
        words = len(tx.words(text))
        sentences = [s for s in tx.sentences(text) if re.search(r"\w", s)]
        last_lines = lines[-2:] if len(lines) > 1 else []
        first = lines[0].strip() if lines else ""
        return cls(
            words=words,
            sentences=len(sentences),
            mean_sentence_words=words / max(1, len(sentences)),
            bullets=sum(bool(tx.BULLET.match(line)) for line in lines),
            numbered=sum(bool(tx.NUMBER.match(line)) for line in lines),
            questions=text.count("?"),
            exclamations=text.count("!"),
            emojis=len(tx.EMOJI.findall(text)),
            greeting=bool(lines) and bool(tx.GREETING.match(first)),
            closing=tx.is_closing(last_lines),
            second_person=len(_SECOND_PERSON.findall(text)) / max(1, words),
            heading=len(lines) > 1 and len(first.split()) <= 8 and not first.endswith((".", "!", "?"))
                    and not tx.BULLET.match(first) and not tx.GREETING.match(first),
        )


def describe_edit(draft: str, edited: str) -> list[str]:
    """Short observations of how ``edited`` differs from ``draft`` in form (not content).

    >>> describe_edit("One long sentence here. And another!", "- one\\n- two")
    ['bullet points', 'no exclamation marks', 'brief']
    """
    a, b = TextShape.of(draft), TextShape.of(edited)
    notes: list[str] = []
    if b.bullets >= 2 and b.bullets > a.bullets:
        notes.append("bullet points")
    if b.numbered >= 2 and b.numbered > a.numbered:
        notes.append("numbered steps")
    if b.heading and not a.heading:
        notes.append("a title line first")
    if b.greeting and not a.greeting:
        notes.append("starts with a greeting")
    if b.closing and not a.closing:
        notes.append("ends with a sign-off")
    if a.closing and not b.closing:
        notes.append("no closing line")
    if b.questions > a.questions:
        notes.append("asks questions")
    if a.exclamations and not b.exclamations:
        notes.append("no exclamation marks")
    if b.emojis > a.emojis:
        notes.append("with emojis")
    if len(_QA_LINE.findall(edited)) >= 2 > len(_QA_LINE.findall(draft)):
        notes.append("question-answer format (Q:/A: lines)")
    if tx.HASHTAG.search(edited) and not tx.HASHTAG.search(draft):
        notes.append("with hashtags")
    if b.second_person > a.second_person + 0.02:
        notes.append("addresses the reader as 'you'")
    if a.words and b.words < 0.75 * a.words:
        notes.append("brief")
    elif a.words and b.words > 1.3 * a.words:
        notes.append("more detailed")
    if b.sentences >= 2 and b.mean_sentence_words < 0.75 * a.mean_sentence_words and not b.bullets:
        notes.append("short sentences")
    return notes


# describe_edit notes that a mined rule of these kinds states more precisely
_COVERED_BY_RULES = {
    "bullet points": {"bullets"}, "numbered steps": {"numbered"},
    "a title line first": {"opening_line", "opening_template"},
    "starts with a greeting": {"opening_line"}, "ends with a sign-off": {"closing_line"},
    "no closing line": {"remove_closing"}, "no exclamation marks": {"no_exclamation"},
    "brief": {"max_words", "max_sentences"}, "short sentences": {"max_sentence_words"},
}


def edit_evidence(draft: str, edited: str, *, limit: int = 8) -> list[str]:
    """What the edit did, as precise statements a generator can act on: the rules mined from it (exact lines
    added, words replaced, phrases deleted, limits; ``agent.rules.mine``) first, then the form changes of
    ``describe_edit`` that no mined rule states already; at most ``limit`` of them.

    >>> edit_evidence("Dear Sam,\\n\\nI am late, as the bus broke down. Sorry!",
    ...               "Hey!\\n\\nI'm late, as the bus broke down. Sorry.")
    ["start with the line 'Hey!'", "replace 'I am' with 'I'm'", 'no exclamation marks']
    """
    from rapidfuzz.distance import Levenshtein

    from .rules import mine  # imported late: the rule kinds are heavier than this module

    # A rewrite that keeps little of the draft has no aligned phrases or lines to mine from: only its form.
    rewritten = Levenshtein.normalized_similarity(tokenize(draft), tokenize(edited)) < 0.3
    rules = [] if rewritten else mine(draft, edited)
    kinds = {rule.kind for rule in rules}
    items = [rule.describe() for rule in rules]
    if "opening_template" in kinds:  # the form notes are about the rest: a TL;DR line does not make it "more detailed"
        head, body, tail = tx.split_frame(edited)
        edited = tx.join_frame(head[1:], body, tail)
    items += [note for note in describe_edit(draft, edited) if not _COVERED_BY_RULES.get(note, set()) & kinds]
    return list(dict.fromkeys(items))[:limit]


def preference_items(text: str) -> list[str]:
    """The parts of a preference: split on ';' (or, when there is none, on ','), never inside quotes.

    >>> preference_items("start with the line 'Hi there,'; replace 'I am' with 'I'm'")
    ["start with the line 'Hi there,'", "replace 'I am' with 'I'm'"]
    """
    outside: dict[str, list[int]] = {";": [], ",": []}
    quoted = None
    for i, ch in enumerate(text):
        if ch in "'\"":
            if 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum():
                continue  # an apostrophe inside a word (I'm) opens or closes nothing
            if quoted is None:
                quoted = ch
            elif quoted == ch:
                quoted = None
        elif ch in outside and quoted is None:
            outside[ch].append(i)
    cuts = outside[";"] or outside[","]
    bounds = zip([-1] + cuts, cuts + [len(text)])
    return [part for part in (text[a + 1:b].strip() for a, b in bounds) if part]


# describe_edit notes that say what one text is (not how it differs from another), read on that text
_NOTE_HOLDS = {
    "asks questions": lambda shape, text: shape.questions > 0,
    "no exclamation marks": lambda shape, text: not shape.exclamations,
    "with emojis": lambda shape, text: shape.emojis > 0,
    "with hashtags": lambda shape, text: bool(tx.HASHTAG.search(text)),
    "question-answer format (Q:/A: lines)": lambda shape, text: len(_QA_LINE.findall(text)) >= 2,
    "starts with a greeting": lambda shape, text: shape.greeting,
    "ends with a sign-off": lambda shape, text: shape.closing,
    "no closing line": lambda shape, text: not shape.closing,
    "bullet points": lambda shape, text: shape.bullets >= 2,
    "numbered steps": lambda shape, text: shape.numbered >= 2,
    "a title line first": lambda shape, text: shape.heading,
}


def item_holds(item: str, text: str) -> bool | None:
    """Whether ``text`` does what the preference item says, for the items edit evidence is made of (a rule's
    description, a ``describe_edit`` note about the text itself); None for any other item (free words, a word
    choice, a comparison such as 'brief'), which no text can be checked against.

    >>> item_holds("at most 5 words", "Short and sweet."), item_holds("asks questions", "Why?")
    (True, True)
    >>> item_holds("casual tone", "Hey there.") is None
    True
    """
    from ._rule_kinds import rule_from_description  # late: the rule kinds are heavier than this module

    rule = rule_from_description(item)
    if rule is not None:
        return rule.done(text)
    check = _NOTE_HOLDS.get(_key(item))
    return None if check is None else bool(check(TextShape.of(text), text))


def kept_items(preference: str, kept: str) -> list[str]:
    """The items of ``preference`` (the one a draft was written to) that the user's kept text does: the user left
    them standing, or made the draft do them.

    An edit's evidence is what changed, so an edit of a draft that already did part of what the user wants
    teaches only the rest ('asks questions'); the parts the kept text still does are learned from it as well.

    >>> kept_items("numbered points, one per line; with hashtags", "1. A\\n2. B")
    ['numbered points, one per line']
    """
    return [item for item in preference_items(preference) if item_holds(item, kept)]


# aspects of a text an item speaks of: a new item replaces a standing one about the same aspect
_ASPECT = {"opening_line": "opening", "opening_template": "opening", "closing_line": "closing",
           "remove_closing": "closing", "end_text": "closing", "bullets": "list", "numbered": "list",
           "question_answer": "list"}
_NOTE_KINDS = {**_COVERED_BY_RULES, "more detailed": {"max_words", "max_sentences"},
               "question-answer format (Q:/A: lines)": {"question_answer"}}


def _key(item: str) -> str:
    return " ".join(item.lower().split())


def _aspects(item: str) -> set[str]:
    from ._rule_kinds import rule_from_description

    rule = rule_from_description(item)
    kinds = {rule.kind} if rule is not None else _NOTE_KINDS.get(_key(item), {_key(item)})
    return {_ASPECT.get(kind, kind) for kind in kinds}


def with_kept_items(learned: str, used: str, kept: str, *, limit: int = 8) -> str:
    """The preference ``learned`` from an edit of a draft written to the preference ``used``, with the items of
    ``used`` that the kept text does (``kept_items``) before its own, except where it says something of the same
    aspect (a closing line replaces a closing line); at most ``limit`` items.

    >>> with_kept_items("asks questions", "start with the line 'Hi,'; at most 3 words; no emojis", "Hi,\\nA day?")
    "start with the line 'Hi,'; at most 3 words; asks questions"
    """
    new = preference_items(learned)
    if not used or not new:
        return learned
    said = {_key(item) for item in new}
    covered = set().union(*(_aspects(item) for item in new))
    kept_ones = [item for item in kept_items(used, kept)
                 if _key(item) not in said and not _aspects(item) & covered]
    return "; ".join((kept_ones + new)[:limit]) if kept_ones else learned


# Words that name the texts in the inference and aggregation prompts, or say nothing about style:
# an answer made only of these ("The edited version", "Draft:") echoes a prompt label, not a preference.
_LABEL_WORDS = frozenset(
    "a an the s this that these those of to in on for and or with its it is are be user users "
    "edited edit edits version versions draft drafts text texts original assistant answer preference "
    "preferences combined writing style format phrase changes change form noticed so far beginning "
    "here new revised output response".split())

# Chat filler a small generator puts before (or instead of) its answer: "I'm glad to help! Here's ..."
_CHAT_PREAMBLE = re.compile(r"^\W*(i['’]m|i am|i['’]d|i would|i will|i can|sure|certainly|of course|"
                            r"here['’]s|here is|here are|okay|ok)\b", re.I)


def looks_like_preference(text: str, *sources: str, max_words: int = 20, ngram: int = 5) -> bool:
    """False when ``text`` is too long, repeats itself, only echoes the prompt's labels (small
    generators answer "The edited version"), is chat filler ("I'm glad to help!"), or copies a run of
    ``ngram`` tokens from a source: then the generator restated content instead of naming a preference.

    >>> looks_like_preference("The edited version"), looks_like_preference("casual tone, no closing")
    (False, True)
    """
    tokens = [t.lower() for t in tokenize(text)]
    words = [t for t in tokens if re.search(r"\w", t)]
    if not words or len(text.split()) > max_words:
        return False
    if all(w in _LABEL_WORDS for w in words) or _CHAT_PREAMBLE.match(text):
        return False
    if len(words) >= 6 and len(set(words)) < 0.5 * len(words):
        return False
    grams = {tuple(tokens[i:i + ngram]) for i in range(len(tokens) - ngram + 1)}
    for source in sources:
        st = [t.lower() for t in tokenize(source)]
        if grams & {tuple(st[i:i + ngram]) for i in range(len(st) - ngram + 1)}:
            return False
    return True
