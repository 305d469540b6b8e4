"""What goes into the agent and what comes out: per-call options, results, and the user-id rule."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Sequence

from redline.policies import STRATEGIES

from .errors import InvalidInput
from .prompts import TASKS

__all__ = ["GenerateOptions", "GenerateResult", "StreamStart", "TextDelta", "EditReceipt", "LearnResult",
           "USER_PATTERN", "validate_user", "check_control_chars", "check_text", "texts_for_log", "TASKS", "STRATEGIES"]

USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:+\-]{0,127}$"  # also the API's path and body pattern
_USER_ID = re.compile(USER_PATTERN)
# C0 controls and DEL, except tab, line feed, vertical tab, form feed and carriage return (the ones that lay out
# text). C1 (U+0080-U+009F) stays: real documents carry it as mis-decoded Windows-1252 punctuation.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def validate_user(user: str) -> str:
    """``user`` when it is a valid user id (1-128 letters, digits and . _ @ : + -), else ``InvalidInput``."""
    if not isinstance(user, str) or not _USER_ID.match(user):
        raise InvalidInput("user must be 1-128 characters: letters, digits and . _ @ : + - "
                           "(starting with a letter or digit)")
    return user


def check_control_chars(text: str, what: str) -> str:
    """``text`` when it holds no control character but tab, newline, carriage return, vertical tab and form feed;
    else ``InvalidInput`` naming the first one. NUL, ESC, backspace and the like are no part of a text anyone
    writes, and they break or steer what reads the texts back (C strings, terminals, log viewers); rejecting
    them tells the client at once, where stripping would store an edit the user did not make."""
    found = _CONTROL.search(text)
    if found:
        raise InvalidInput(f"{what} contains the control character U+{ord(found.group()):04X} at position "
                           f"{found.start()}; only tab, newline, carriage return, vertical tab and form feed may "
                           "appear")
    return text


def check_text(text: str, what: str, max_chars: int) -> str:
    """``text`` when it is a string with a character that is not whitespace, at most ``max_chars`` long and without
    control characters (``check_control_chars``); else ``InvalidInput`` naming ``what``."""
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be a string")
    if not text.strip():
        raise InvalidInput(f"{what} is empty")
    if len(text) > max_chars:
        raise InvalidInput(f"{what} is {len(text)} characters; the limit is {max_chars}")
    return check_control_chars(text, what)


def texts_for_log(log_text: bool, **texts: str | None) -> str:
    """`` name_chars=N`` for each text of a log line; the texts themselves only with ``log_text`` (the setting
    ``REDLINE_LOG_TEXT``, a debugging aid: they are the users' words, and logs outlive a user's hard delete)."""
    parts = [f"{name}_chars={len(text or '')}" for name, text in texts.items()]
    if log_text:
        parts += [f"{name}={text!r}" for name, text in texts.items()]
    return " ".join(parts)


@dataclass
class GenerateOptions:
    """Per-call options; ``None`` means the configured default."""

    strategy: str = "greedy"
    n: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    history: Sequence[dict] = ()
    preference: str | None = None  # an explicit preference overrides retrieval (oracle/ablations)
    use_retrieval: bool = True
    use_preference: bool = True  # False: no learned preference in the prompt (retrieval still picks the rules)
    rules: bool = True  # apply the user's active edit rules (when the server has them on)


@dataclass
class GenerateResult:
    interaction_id: str
    user: str
    task: str
    text: str
    preference: str | None
    neighbours: list[dict]
    prompt: list[dict]
    candidates: list[dict]
    strategy: str
    model: str
    tokens_in: int
    tokens_out: int
    timings_ms: dict[str, float]
    applied_rules: list[dict] = field(default_factory=list)  # [{id, kind, description}] that changed ``text``
    # With a choice among candidates: {"mode", "chosen", "differs_from_greedy", "distinct", "candidate_temperature",
    # "seed"}; None when one candidate was drafted (greedy, or a cold start).
    selection: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StreamStart:
    """The first event of ``Agent.generate_stream``: what is known before the text. ``streams``: text deltas follow
    (one candidate is drafted); ``rules_may_rewrite``: the user has edit rules active here, so the final text may
    differ from the deltas. The interaction exists (can take an edit) once the ``GenerateResult`` arrived."""

    interaction_id: str
    user: str
    task: str
    strategy: str
    preference: str | None
    neighbours: list[dict]
    model: str
    streams: bool
    rules_may_rewrite: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TextDelta:
    """A piece of the draft as the generator decoded it."""

    text: str


@dataclass
class EditReceipt:
    interaction_id: str
    cost: int
    is_edit: bool
    created: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LearnResult:
    interaction_id: str
    cost: int
    is_edit: bool
    preference: str | None
    preference_id: int | None
    kind: str | None
    already_learned: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    inferred_by: str | None = None  # llm: the generator's answer was used; evidence: what the edit measured

    def to_dict(self) -> dict:
        return asdict(self)
