"""Every prompt redline sends, as named templates. Nothing else in the code writes prompt text.

Templates are plain ``str.format`` strings; builders below turn them into chat messages.
"""

from __future__ import annotations

import re
from typing import Sequence

from redline.text import LIST_ITEM, norm, sentence_pieces

__all__ = ["TASKS", "task_prompt", "revision_prompt", "inference_prompt", "aggregation_prompt", "clean_preference",
           "without_echo", "echoes_preference", "icl_edit_history", "user_judge_prompt", "user_rewrite_prompt"]

SYSTEM = "You are a writing assistant. Answer with the requested text only, without preamble."

# One template per task: {context} is the user's material.
TASK_TEMPLATES: dict[str, str] = {
    "summarize": "Summarize the following text.\n\nText:\n{context}",
    "email": "Write an email based on the following notes.\n\nNotes:\n{context}",
    "revise": "Revise the following text to improve it, keeping its meaning.\n\nText:\n{context}",
    "chat": "{context}",
}
TASKS = tuple(TASK_TEMPLATES)

PREFERENCE_SUFFIX = "\n\nWrite it to suit this user's preference: {preference}."

# Alternatives to the greedy draft for selection (policies.selection, mode "revisions"): the generator revises
# its own draft towards one preference direction, so candidates differ from the draft in a way the user's edit
# profile can judge (what was kept, cut, inserted), not only in form.
REVISE_FOR_PREFERENCE = (
    "Here is a draft a writing assistant wrote for a user:\n\n{draft}\n\n"
    "Revise the draft to suit this user's preference: {preference}. Keep its content. "
    "Answer with the revised text only."
)

# The inference sees the kept text and what redline measured in the edit (agent.edit_analysis.edit_evidence:
# exact lines added, words replaced, limits, form changes); a small generator cannot compare two long texts,
# but it can turn precise evidence into instructions, and add the tone the kept text shows.
INFER_PREFERENCE = (
    "A user edited a {task} that a writing assistant wrote for them. The version the user kept:\n{edited}\n\n"
    "What the edit changed:\n{evidence}\n\n"
    "Write this user's preferences for their next {task} as one line of short instructions separated by "
    "semicolons. Keep quoted lines exactly. Add the tone or style the kept version shows, if any. "
    "Answer with the line only."
)

AGGREGATE_PREFERENCES = (
    "Here are preferences a user showed on similar past texts, one per line:\n{preferences}\n\n"
    "Combine them into one line of short instructions separated by semicolons: keep what most of them "
    "agree on, keep quoted lines exactly, drop what is rare. Answer with the line only."
)

TASK_NOUNS = {"summarize": "summary", "email": "email", "revise": "revision", "chat": "reply"}

def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def task_prompt(task: str, context: str, preference: str | None = None, *,
                context_chars: int = 4000, history: Sequence[dict] = ()) -> list[dict]:
    """Chat messages asking for ``task`` on ``context``, shaped by ``preference`` when given.

    ``history`` (chat task only) is prepended as earlier turns.
    """
    if task not in TASK_TEMPLATES:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    content = TASK_TEMPLATES[task].format(context=_truncate(context, context_chars))
    if preference:
        content += PREFERENCE_SUFFIX.format(preference=preference.rstrip(". "))
    return [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": content}]


def revision_prompt(draft: str, preference: str | None, *, draft_chars: int = 4000) -> list[dict]:
    """Chat messages asking for a revision of ``draft`` towards ``preference`` (or just a better one without)."""
    wanted = preference.rstrip(". ") if preference else "clearer and better written"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": REVISE_FOR_PREFERENCE.format(
        draft=_truncate(draft, draft_chars), preference=wanted)}]


def inference_prompt(task: str, edited: str, evidence: Sequence[str], *, edited_chars: int = 1500) -> list[dict]:
    """Messages asking the LLM which preference explains the user's edit, from the kept text and the
    evidence ``agent.edit_analysis.edit_evidence`` measured in the edit."""
    listed = "\n".join(f"- {item}" for item in evidence) or "- small rewording"
    return [{"role": "user", "content": INFER_PREFERENCE.format(
        task=TASK_NOUNS.get(task, task), edited=_truncate(edited, edited_chars), evidence=listed)}]


def aggregation_prompt(preferences: Sequence[str]) -> list[dict]:
    listed = "\n".join(f"- {p}" for p in preferences)
    return [{"role": "user", "content": AGGREGATE_PREFERENCES.format(preferences=listed)}]


# Words of the instructions above that a small generator sometimes writes back after its answer ("...\n\nWrite it to
# suit this user's preference: brief."): never words of the user's text.
ECHOED_INSTRUCTION = re.compile(r"to suit this user's preference|answer with the (?:revised )?text only|"
                                r"answer with the requested text only", re.IGNORECASE)


def without_echo(text: str) -> str:
    """``text`` cut before the sentence or line where it starts repeating redline's own instructions; as it is when
    it has none, or when nothing would be left."""
    m = ECHOED_INSTRUCTION.search(text)
    if m is None:
        return text
    line_start = text.rfind("\n", 0, m.start()) + 1
    line_end = text.find("\n", m.end())
    line = text[line_start:line_end if line_end >= 0 else len(text)]
    cut = at = 0
    for piece in sentence_pieces(line):  # the sentence that holds the instruction, read as redline reads text
        at = line.index(piece, at)
        if line_start + at + len(piece) > m.start():
            cut = at
            break
        at += len(piece)
    kept = text[:line_start + cut].rstrip()
    return kept or text


ECHO_CLAUSE_WORDS = 3  # a preference clause shorter than this ('brief', 'no emojis') may well be the user's text
ECHO_MIN_CLAUSES = 2
# A preference made of the user's lines ("Hey! Could you send me your thoughts by Friday? Kind regards") has no
# clause to find: its echo is a text of its words. 19 cipher-5 emails in the first 12-17 rounds of the 2026-12-06 night
# runs were that (shipped and held-out users), drawing 0-12% of their words (4+ letters) from the notes where the
# no-learning emails drew 20-90%; the rule users passed them at 0-15 words.
ECHO_WORD_SHARE = 0.8
ECHO_MIN_WORDS = 5


def _plain_words(text: str) -> str:
    """``redline.text.norm`` with one apostrophe: "'Subject:'" and "\u201cSubject:\u201d" are "subject",
    "don\u2019t" is "don't"."""
    return norm(text.replace("\u2019", "'"))


def echoes_preference(text: str, preference: str | None) -> bool:
    """Whether ``text`` writes back the preference it was asked to suit: two of the preference's clauses of three
    words or more, word for word ('Subject: Ask questions; begin with a "Subject:" line; keep sentences short'), or
    a text of five words or more, ``ECHO_WORD_SHARE`` of them the preference's own ("Hey! Could you send me your
    thoughts by Friday? Kind regards."). A draft that quotes the preference's lines above and below its own
    sentences is neither (the clause is "end with 'Thanks for reading!'", and its sentences are its words)."""
    if not preference:
        return False
    plain = f" {_plain_words(text)} "
    clauses = {_plain_words(c) for c in re.split(r"[;\n]|\.\s", preference)}
    found = sum(1 for c in clauses if len(c.split()) >= ECHO_CLAUSE_WORDS and f" {c} " in plain)
    if found >= ECHO_MIN_CLAUSES:
        return True
    words, own = plain.split(), set(_plain_words(preference).split())
    return len(words) >= ECHO_MIN_WORDS and sum(w in own for w in words) >= ECHO_WORD_SHARE * len(words)


def clean_preference(text: str, *, max_words: int = 40) -> str:
    """An LLM answer as one preference line: without quotes around it, labels or list markers, capped in words.

    A line ending in a colon introduces the answer ("Here's a possible combination:"), so it is skipped; an
    answer written as a list (one instruction per marked line) is joined with semicolons; otherwise only the
    first line counts (what follows is commentary).
    """
    lines, listed = [], False
    for raw in text.splitlines():
        marked = bool(LIST_ITEM.match(raw))
        line = LIST_ITEM.sub("", raw).strip().strip("*• ").strip()
        if len(line) > 1 and line[0] == line[-1] and line[0] in "\"`":
            line = line[1:-1].strip()
        if not line or line.endswith(":"):
            continue
        if lines and not (listed and marked):
            break
        if not lines:
            listed = marked
        lowered = line.lower()
        for label in ("preferences:", "preference:", "combined preference:", "combined:", "user preference:",
                      "answer:", "the user prefers"):
            if lowered.startswith(label):
                line = line[len(label):].strip(" :")
                lowered = line.lower()
        if line:
            lines.append(line.rstrip(".;"))
    words = "; ".join(lines).split()
    return " ".join(words[:max_words]).rstrip(".,;:")


# -- evaluation: in-context edit examples (ICL-edit baseline) and the simulated LLM user --------------

ICL_EDIT_EXAMPLES = (
    "Before you write, study how this user edited drafts of similar texts; write the way the user's "
    "edited versions read.\n\n{examples}"
)
ICL_EDIT_EXAMPLE = "Example {i}\nDraft:\n{draft}\n\nThe user's edited version:\n{edited}"
ICL_EDIT_ACK = "Understood. I will write the way the user's edited versions read."

USER_JUDGE = (
    "You are a user with this writing preference: {preference}.\n\nHere is a text written for you:\n{draft}\n\n"
    "Does the text already suit your preference? Answer yes or no only."
)
USER_REWRITE = (
    "You are a user with this writing preference: {preference}.\n\nRewrite the text below so that it suits "
    "your preference, keeping its content. Answer with the rewritten text only.\n\nText:\n{draft}"
)


def icl_edit_history(examples: Sequence[tuple[str, str]], *, chars: int = 1500) -> list[dict]:
    """Chat turns that show past (draft, edited) pairs before the task prompt; empty without examples."""
    if not examples:
        return []
    listed = "\n\n".join(ICL_EDIT_EXAMPLE.format(i=i, draft=_truncate(d, chars), edited=_truncate(e, chars))
                         for i, (d, e) in enumerate(examples, 1))
    return [{"role": "user", "content": ICL_EDIT_EXAMPLES.format(examples=listed)},
            {"role": "assistant", "content": ICL_EDIT_ACK}]


def user_judge_prompt(draft: str, preference: str) -> list[dict]:
    return [{"role": "user", "content": USER_JUDGE.format(preference=preference, draft=draft)}]


def user_rewrite_prompt(draft: str, preference: str) -> list[dict]:
    return [{"role": "user", "content": USER_REWRITE.format(preference=preference, draft=draft)}]
