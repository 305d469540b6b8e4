"""Every prompt redline sends, as named templates. Nothing else in the code writes prompt text.

Templates are plain ``str.format`` strings; builders below turn them into chat messages.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["TASKS", "task_prompt", "inference_prompt", "aggregation_prompt", "clean_preference",
           "icl_edit_history", "user_judge_prompt", "user_rewrite_prompt"]

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

INFER_PREFERENCE = (
    "A user asked for a {task} of a text. The assistant wrote a draft and the user edited it.\n\n"
    "Text (beginning):\n{context}\n\nDraft:\n{draft}\n\nUser's edited version:\n{edited}\n\n"
    "Changes in form noticed so far: {observations}.\n\n"
    "Compare the draft with the edited version. In one short phrase (at most 15 words), describe the "
    "writing style or format this user prefers, for example 'bullet points, brief' or "
    "'casual tone, no closing'. Answer with the phrase only."
)

AGGREGATE_PREFERENCES = (
    "Here are preferences a user showed on similar past texts:\n{preferences}\n\n"
    "Combine them into one short preference (at most 15 words) that keeps what they agree on and drops "
    "what is rare. Answer with the combined preference only."
)


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


def inference_prompt(task: str, context: str, draft: str, edited: str, *, observations: Sequence[str] = (),
                     context_chars: int = 1200) -> list[dict]:
    """Messages asking the LLM which preference explains the user's edit of ``draft`` into ``edited``;
    ``observations`` are form changes found by ``agent.edit_analysis.describe_edit``."""
    return [{"role": "user", "content": INFER_PREFERENCE.format(
        task=task, context=_truncate(context, context_chars), draft=draft, edited=edited,
        observations=", ".join(observations) or "none")}]


def aggregation_prompt(preferences: Sequence[str]) -> list[dict]:
    listed = "\n".join(f"- {p}" for p in preferences)
    return [{"role": "user", "content": AGGREGATE_PREFERENCES.format(preferences=listed)}]


def clean_preference(text: str, *, max_words: int = 25) -> str:
    """The first non-empty line of an LLM answer, without quotes, labels or list markers, capped in words.

    A line ending in a colon introduces the answer ("Here's a possible combination:"), so it is skipped.
    """
    for line in text.splitlines():
        line = line.strip().strip("\"'`*-• ").strip()
        if line.endswith(":"):
            continue
        lowered = line.lower()
        for label in ("preference:", "combined preference:", "combined:", "user preference:", "answer:",
                      "the user prefers"):
            if lowered.startswith(label):
                line = line[len(label):].strip(" :")
                lowered = line.lower()
        if line:
            words = line.split()
            return " ".join(words[:max_words]).rstrip(".,;:")
    return ""


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
