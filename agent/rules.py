"""Learned edit rules: the exact fixes a user makes again and again, made for them.

Mining proposes candidate rules from one (draft, kept text) pair; evidence counts, over every later
edit, whether the draft offered the chance and the user made the fix (support) or left it
(contradiction); a rule is active above a support and precision threshold. Active rules are applied in
a fixed order (content, then form, then frame lines). Everything here is deterministic and pure: no
generator call, no storage (the store keeps rules and their per-interaction observations).

>>> rules = mine("We utilize the tool. It helps!", "We use the tool. It helps!")
>>> [r.describe() for r in rules]
["replace 'utilize' with 'use'"]
>>> apply_rules("Teams utilize it daily.", rules)[0]
'Teams use it daily.'
"""

from __future__ import annotations

import difflib
import math
import re
from datetime import datetime, timezone
from typing import Iterable, Sequence

from rapidfuzz import fuzz

from redline import text as tx

from ._rule_evidence import Counts, Observation, RuleEvidence, Thresholds, active_here, chance_of
from ._rule_kinds import (
    KINDS,
    BulletList,
    ClosingLine,
    DeletePhrase,
    EndText,
    MaxSentences,
    MaxSentenceWords,
    MaxWords,
    NoExclamation,
    NumberedList,
    OpeningLine,
    OpeningTemplate,
    QuestionAnswer,
    RemoveClosing,
    ReplacePhrase,
    Rule,
    _positional_lower,
    _qa_lines,
    rule_from_dict,
)
from .editcost import edit_cost

__all__ = [
    "Rule", "KINDS", "ReplacePhrase", "DeletePhrase", "MaxSentenceWords", "MaxSentences", "MaxWords", "BulletList",
    "NumberedList", "QuestionAnswer", "NoExclamation", "EndText", "RemoveClosing", "ClosingLine", "OpeningLine",
    "OpeningTemplate",
    "rule_from_dict",
    "mine", "Thresholds", "Counts", "RuleEvidence", "Observation", "observe", "update_evidence", "active_here",
    "chance_of", "apply_rules",
]

# -- mining ----------------------------------------------------------------------------------------

MATCH = 0.6            # sentence similarity (0..1) above which a draft sentence is the edited one
MAX_SPLIT = 5          # a draft sentence may become up to this many edited sentences
MAX_REPLACE_WORDS = 4  # each side of a phrase replacement
PHRASE_CONTEXT = 0.7   # sentence similarity below which no phrase rule is read from a sentence pair


def _words_grid(n: int) -> int:
    """Round a word count up to a grid, so evidence accumulates across edits (57 -> 60, 130 -> 150)."""
    step = 10 if n <= 100 else 25 if n <= 300 else 50
    return max(step, math.ceil(n / step) * step)


def _sim(a: str, b: str) -> float:
    return fuzz.ratio(tx.norm(a), tx.norm(b)) / 100


def _align(draft: list[str], edited: list[str]) -> list[tuple[int, list[int]]]:
    """Monotone alignment of draft sentences to edited ones: ``[(i, [j, ...]), ...]``, each draft
    sentence matched to one or several consecutive edited sentences (a split); unmatched sentences on
    either side were deleted or inserted."""
    m, n = len(draft), len(edited)
    best = [[0.0] * (n + 1) for _ in range(m + 1)]
    back: list[list[tuple]] = [[()] * (n + 1) for _ in range(m + 1)]
    for i in range(m + 1):
        for j in range(n + 1):
            if i == 0 and j == 0:
                continue
            options = []
            if i:
                options.append((best[i - 1][j], ("del",)))
            if j:
                options.append((best[i][j - 1], ("ins",)))
            if i and j:
                for r in range(1, min(MAX_SPLIT, j) + 1):
                    s = _sim(draft[i - 1], " ".join(edited[j - r:j]))
                    if s >= MATCH:
                        options.append((best[i - 1][j - r] + s + 0.01 * (r == 1), ("match", r)))
            best[i][j], back[i][j] = max(options, key=lambda o: o[0])
    pairs, i, j = [], m, n
    while i or j:
        step = back[i][j]
        if step[0] == "del":
            i -= 1
        elif step[0] == "ins":
            j -= 1
        else:
            r = step[1]
            pairs.append((i - 1, list(range(j - r, j))))
            i, j = i - 1, j - r
    return pairs[::-1]


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(0), m.start(), m.end()) for m in tx.PHRASE_TOKEN.finditer(text)]


def _has_word(tokens) -> bool:
    return any(t[0][:1].isalnum() or t[0][:1] == "_" for t in tokens)


def _core(tokens: list) -> list:
    """Tokens without leading/trailing punctuation."""
    while tokens and not _has_word(tokens[:1]):
        tokens = tokens[1:]
    while tokens and not _has_word(tokens[-1:]):
        tokens = tokens[:-1]
    return tokens


def _span(text: str, tokens: list) -> str:
    return text[tokens[0][1]:tokens[-1][2]] if tokens else ""


def _phrase_candidates(a: str, b: str, at_start: bool) -> list[Rule]:
    """Short aligned substitutions and deleted phrases between one draft sentence and its edit."""
    ta, tb = _tokens(a), _tokens(b)
    ops = difflib.SequenceMatcher(None, [t[0].lower() for t in ta], [t[0].lower() for t in tb],
                                  autojunk=False).get_opcodes()
    out: list[Rule] = []
    if _sim(a, b) < PHRASE_CONTEXT:
        return out      # a rewritten sentence: its pieces are a paraphrase, not a fix to repeat
    for k, (tag, i1, i2, j1, j2) in enumerate(ops):
        # an aligned change sits between unchanged runs (of two tokens, or the sentence's edge)
        if not all(not 0 <= x < len(ops) or ops[x][0] == "equal" and (
                ops[x][2] - ops[x][1] >= 2 or ops[x][1] == 0 or ops[x][2] == len(ta)) for x in (k - 1, k + 1)):
            continue
        old, new = _core(ta[i1:i2]), _core(tb[j1:j2])
        wa = sum(_has_word([t]) for t in old)
        wb = sum(_has_word([t]) for t in new)
        if tag == "replace" and 1 <= wa <= MAX_REPLACE_WORDS and 1 <= wb <= MAX_REPLACE_WORDS:
            o, n = _span(a, old), _span(b, new)
            if i1 == 0 and at_start:
                o, n = _positional_lower(o), _positional_lower(n)
            try:
                out.append(ReplacePhrase(o, n))
            except ValueError:
                pass
        elif tag in ("delete", "replace") and wb == 0 and 2 <= wa <= 12:
            try:
                out.append(DeletePhrase(_span(a, old)))
            except ValueError:
                pass
    return out


def mine(draft: str, edited: str) -> list[Rule]:
    """Candidate rules from one edit: each is followed by this edit and, applied to the draft alone,
    brings it closer to the kept text. Deterministic; at most a handful per edit.

    >>> [r.describe() for r in mine("Hi Ann,\\n\\nThe plan passed.\\n\\nBest,\\nBo",
    ...                             "Hey!\\n\\nThe plan passed.")]
    ["start with the line 'Hey!'", 'no sign-off or closing line']
    """
    if draft.strip() == edited.strip() or not draft.strip() or not edited.strip():
        return []
    _, db, dt = tx.split_frame(draft)
    eh, eb, et = tx.split_frame(edited)
    draft_lines = {tx.norm(ln) for ln in tx.lines(draft)}
    cands: list[Rule] = []

    # frame lines: a fixed line (the same words every time) as it is; a templated one (its words from this text, a
    # heading or a "TL;DR: ..." line) by its shape, never with this document's words
    source = draft + "\n" + eb
    first = tx.lines(edited)[0].strip()
    if eh and eh[0].strip() == first and tx.norm(first) not in draft_lines:
        if (template := tx.line_template(first, source)) is None:
            cands.append(_maybe(OpeningLine, first))
        else:
            label, rest = template
            title = len(tx.words(rest)) <= 8 and not rest.rstrip().endswith(tuple(tx.END_MARKS))
            cands.append(_maybe(OpeningTemplate, label, len(tx.words(rest)) if title else 0))
    if et and not any(tx.norm(ln) in draft_lines for ln in et) and not any(tx.line_template(ln, source) for ln in et):
        cands.append(_maybe(ClosingLine, "\n".join(et) if tx.is_closing(et) and len(et) == 2 else et[-1]))
    if tx.is_closing(dt) and not tx.is_closing(et):
        cands.append(RemoveClosing())

    # sentences: aligned, deleted, split, appended
    ds, es = tx.sentences(db), tx.sentences(eb)
    pairs = _align(ds, es)
    matched = {i for i, _ in pairs}
    last = max(matched) if matched else -1
    for i, js in pairs:
        cands += _phrase_candidates(ds[i], " ".join(es[j] for j in js), at_start=True)
    for i, s in enumerate(ds):
        if i not in matched and len(tx.words(s)) <= 12:
            cands.append(_maybe(DeletePhrase, s))
    own = tx.own_sentences(db, eb)
    appended = es[len(own):]
    if appended and len(" ".join(appended).split()) <= 12 and not tx.line_template(" ".join(appended), source):
        cands.append(_maybe(EndText, " ".join(appended)))
    # a limit is read from sentences cut at the end of a body that did not grow (words the user added elsewhere
    # are not the limit's)
    dw, ow = len(tx.words(db)), sum(len(tx.words(s)) for s in own)
    if any(i not in matched for i in range(last + 1, len(ds))) and own and dw and ow <= dw:
        cands.append(MaxSentences(len(own)))
        cands.append(MaxWords(_words_grid(ow)))
    cands.append(_sentence_limit(ds, es, pairs))

    # layout
    marker = tx.list_marker(eb)
    if marker and marker != tx.list_marker(db):
        cands.append(NumberedList() if marker == "1." else BulletList(marker))
    if (qa := _qa_lines(edited)) is not None and _qa_lines(draft) is None:
        cands.append(_maybe(QuestionAnswer, "\n".join(q for label, q in qa if label == "Q")))
    if "!" in db and "!" not in eb:
        cands.append(NoExclamation())

    # keep what this edit follows and what brings the draft closer to it, alone or among the others
    unique = {r.key: r for r in cands if r is not None and r.followed(draft, edited) is True}
    rules = list(unique.values())
    base = edit_cost(draft, edited)
    together = edit_cost(apply_rules(draft, rules)[0], edited)
    return [r for r in rules
            if edit_cost(r.apply(draft), edited) < base
            or together < edit_cost(apply_rules(draft, [o for o in rules if o is not r])[0], edited)]


def _sentence_limit(ds: list[str], es: list[str], pairs: list[tuple[int, list[int]]]) -> Rule | None:
    """The sentence-length limit this edit shows, read only from the sentences the user split: below the
    shortest sentence they split, and at least the longest one they left whole although it had a clause
    boundary to split at (and the shortest first piece of a split, which the user cut to fit); on a grid of 5."""
    split = [(i, js) for i, js in pairs if len(js) > 1]
    if not split:
        return None
    below = min(len(tx.words(ds[i])) for i, _ in split)
    whole = [len(tx.words(ds[i])) for i, js in pairs if len(js) == 1 and tx.split_points(ds[i].split())]
    first_piece = min(len(tx.words(es[js[0]])) for _, js in split)
    n = max(5, math.ceil(max([first_piece, *whole]) / 5) * 5)
    return MaxSentenceWords(n) if n < below else None


def _maybe(cls, *args) -> Rule | None:
    try:
        return cls(*args)
    except ValueError:
        return None


# -- evidence (the counting is in _rule_evidence.py) ---------------------------------------------

def observe(rules: Iterable[Rule], draft: str, edited: str) -> dict[str, bool]:
    """Each rule's verdict on one edit, for the rules the draft gave a chance: ``{key: supported}``."""
    out = {}
    for rule in rules:
        verdict = rule.followed(draft, edited)
        if verdict is not None:
            out[rule.key] = verdict
    return out


def update_evidence(rules_by_key: dict[str, RuleEvidence], draft: str, edited: str, interaction_id: str, *,
                    when: datetime | None = None,
                    history: Sequence[tuple[str, str, str]] = ()) -> list[Observation]:
    """Learn from one edit, in place: mine new rules into ``rules_by_key``, then count this edit for
    EVERY known rule (support when the draft offered the chance and the user made the fix,
    contradiction when they left it). A newly mined rule is first counted over ``history`` (earlier
    ``(interaction_id, draft, edited)`` of the user), so it does not start with a clean slate. Returns
    the observations made (the rows to store, for counting over nearest contexts).

    ``draft`` is the text before rules were applied (the generator's candidate): a rule that fired and
    was kept counts as support, one the user undid as a contradiction.
    """
    when = when or datetime.now(timezone.utc)
    made: list[Observation] = []
    for rule in mine(draft, edited):
        if rule.key in rules_by_key:
            continue
        ev = rules_by_key[rule.key] = RuleEvidence(rule)
        for past_id, past_draft, past_edited in history:
            verdict = rule.followed(past_draft, past_edited)
            if verdict is not None:
                ev.record(verdict, past_id, when)
                made.append(Observation(rule.key, past_id, verdict))
    for key, supported in observe([ev.rule for ev in rules_by_key.values()], draft, edited).items():
        rules_by_key[key].record(supported, interaction_id, when)
        made.append(Observation(key, interaction_id, supported))
    return made


# -- applying --------------------------------------------------------------------------------------

# Kinds of which one text can follow only one rule: the first given wins (callers pass rules best first).
_ONE_OF = {"opening_line": "opening", "opening_template": "opening", "closing_line": "closing", "end_text": "ending",
           "bullets": "list", "numbered": "list", "question_answer": "list"}
_LIMITS = (MaxWords, MaxSentences, MaxSentenceWords)


def _ordered(rules: Iterable[Rule]) -> list[Rule]:
    """Unique rules in application order. Of several length limits of one kind only the loosest applies (a
    tighter cut would remove what the user keeps); of several sentence-length limits the tightest (a limit
    tighter than the user's is contradicted by the sentences they leave whole, so the tightest one still
    active is the closest to theirs); of rules that exclude each other (two opening lines, bullets and
    numbers) the first given."""
    unique = list({r.key: r for r in rules}.values())
    loosest: dict[str, Rule] = {}
    for r in unique:
        if not isinstance(r, _LIMITS):
            continue
        tighter = isinstance(r, MaxSentenceWords)
        if r.kind not in loosest or (r.n < loosest[r.kind].n if tighter else r.n > loosest[r.kind].n):
            loosest[r.kind] = r
    kept, taken = [], set()
    for r in unique:
        group = _ONE_OF.get(r.kind)
        if (isinstance(r, _LIMITS) and loosest[r.kind] is not r) or (group and group in taken):
            continue
        taken.add(group)
        kept.append(r)
    return sorted(kept, key=lambda r: (r.rank, r.key))


MIN_BODY_WORDS = 3  # a body cut below this is no longer a draft, whatever the rule


def _emptied(before: str, after: str, document: str | None = None) -> bool:
    """Whether a rule turned ``before`` into no draft: a body cut below ``MIN_BODY_WORDS``, or, given the
    ``document`` it answers, a text that takes next to nothing of it (``text.ignores_document``) from one that did. A
    length limit keeping only a short first sentence ('My fellow redditors!') or a frame line the generator ran into
    the body ('Quick summary for busy readers.') leaves the user nothing to keep: they write the content themselves
    (held-out summaries, 40 rounds x 3 seeds on aba05c0: 5 such drafts, 34-51 words each)."""
    if len(tx.words(tx.body_of(after))) < MIN_BODY_WORDS <= len(tx.words(tx.body_of(before))):
        return True
    return (document is not None and tx.ignores_document(after, document)
            and not tx.ignores_document(before, document))


def _pipeline(text: str, rules: list[Rule], document: str | None = None) -> tuple[str, list[Rule]]:
    endings = [r for r in rules if isinstance(r, EndText)]
    # text a rule appends is set aside while length limits count, then appended again
    stripped = text
    for r in endings:
        if r.done(stripped):
            head, body, tail = tx.split_frame(stripped)
            toks = list(tx.PHRASE_TOKEN.finditer(body))
            n = len(tx.PHRASE_TOKEN.findall(r.ending))
            if len(toks) < n:  # the ending closes a frame line, not the body: nothing to set aside
                continue
            cut = toks[-n].start()
            rest = re.sub(rf"\n?[ \t]*{tx.LIST_MARK}?[ \t]*\Z", "", body[:cut]).rstrip()
            stripped = tx.join_frame(head, rest, tail) if rest else stripped
    applied = []
    current = stripped
    for rule in rules:
        new = rule.apply(current)
        if new != current and _emptied(current, new, document):
            continue  # never a draft emptied to its frame lines ('Hey!'): the user would write all of it
        if new != current and not (isinstance(rule, EndText) and rule.done(text)):
            applied.append(rule)
        current = new
    return current, applied


def apply_rules(text: str, rules: Iterable[Rule], document: str | None = None) -> tuple[str, list[Rule]]:
    """``(text, applied)``: the rules applied in a fixed order (content edits: replace, delete; form:
    sentence length, length limits, lists, no exclamation; frame: appended text, closing, opening),
    and those that changed the text. Idempotent: applying the result again changes nothing. Pass
    ``rules`` best first: of rules that exclude each other (two opening lines) the first applies. A rule that
    would leave no draft (its body cut to a few words, or given the ``document`` the text answers, nothing of it
    left) is skipped.

    >>> apply_rules("Hi Ann,\\n\\nGreat news! We won.", [NoExclamation(), OpeningLine("Hey!")])[0]
    'Hey!\\n\\nGreat news. We won.'
    """
    ordered = _ordered(rules)
    current, applied = text, []
    for _ in range(3):               # until stable: a rule may open a chance for an earlier one
        new, changed = _pipeline(current, ordered, document)
        applied += [r for r in changed if r not in applied]
        if new == current:
            break
        current = new
    return (text, []) if current == text else (current, applied)
