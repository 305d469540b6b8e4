"""Simulated users: given a draft and the document's source, return the text as the user keeps it.

``RuleUser`` applies the source's text operations (deterministic); ``LLMUser`` follows the PRELUDE
protocol with any generator as the user: a yes/no judgement, then a rewrite that does not see the document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from redline import text as tx
from redline.agent import prompts
from redline.agent.generators import GenerationParams, Generator

from .ops import Operation, build_operation
from .tasks import DATA_DIR

__all__ = ["UserSpec", "Feedback", "RuleUser", "LLMUser", "load_user_specs"]


@dataclass
class UserSpec:
    """One latent preference: who, for which source, described how, made of which operations."""

    name: str
    source: str
    description: str
    operations: list[Operation] = field(default_factory=list)
    prelude: str | None = None


@dataclass
class Feedback:
    edited: str
    satisfied: bool
    tokens_in: int = 0
    tokens_out: int = 0


def load_user_specs(task: str, path: Path | str | None = None) -> dict[str, UserSpec]:
    """The task's users keyed by source, from a YAML or JSON spec (default: the shipped ``users.yaml``).

    The file maps task names to lists of ``{name, source, description, operations: [{op, ...}]}``;
    errors name the user and the problem.
    """
    path = Path(path) if path else DATA_DIR / "users.yaml"
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read users file {path}: {exc.strerror or exc}") from exc
    if path.suffix == ".json":
        data = json.loads(raw)
    else:
        import yaml

        data = yaml.safe_load(raw)
    if not isinstance(data, dict) or task not in data:
        raise ValueError(f"users file {path} has no users for task {task!r}")
    specs: dict[str, UserSpec] = {}
    for i, item in enumerate(data[task] or []):
        name = item.get("name") or f"user {i}"
        for key in ("source", "description", "operations"):
            if not item.get(key):
                raise ValueError(f"user {name!r} in {path} has no {key}")
        try:
            ops = [build_operation(op) for op in item["operations"]]
        except ValueError as exc:
            raise ValueError(f"user {name!r} in {path}: {exc}") from exc
        specs[item["source"]] = UserSpec(name, item["source"], item["description"], ops, item.get("prelude"))
    if not specs:
        raise ValueError(f"users file {path} has no users for task {task!r}")
    return specs


class RuleUser:
    """Deterministic user: applies each operation whose check fails, in order."""

    kind = "rule"

    def __init__(self, specs: dict[str, UserSpec]):
        self.specs = specs

    def feedback(self, source: str, document: str, draft: str) -> Feedback:
        holds_nothing = tx.frame_lines_only(draft) or tx.ignores_document(draft, document)
        text = _with_content(draft, document) if holds_nothing else draft
        for op in self.specs[source].operations:
            text = op.apply(text)
        edited = text.strip() or draft
        return Feedback(edited, satisfied=edited == draft.strip())


LEAD_WORDS = 40  # what a user writes when a draft has no content: the document's opening, up to this many words


def _with_content(draft: str, document: str) -> str:
    """A draft of frame lines only ('Hey!', 'Thanks for reading!', a heading), or one that takes next to nothing from
    the document ('Here's the story.', 'Hi friend, talk soon.', a refusal), has nothing the user could keep by
    editing its form: they write the content themselves, the document's opening sentences, below its lines (their
    own operations then give it their form). Without this such a draft passed a user whose operations only frame
    and shape a text at the cost of its frame lines, or at no cost ('Here's the story.' cost 0 words as a summary)."""
    lead: list[str] = []
    for sentence in tx.sentences(document):
        if lead and len(tx.words(" ".join([*lead, sentence]))) > LEAD_WORDS:
            break
        lead.append(sentence)
    return "\n\n".join(part for part in (draft.strip(), " ".join(lead)) if part)


class LLMUser:
    """The paper's protocol with ``generator`` as the user (judge yes/no, then rewrite without the document)."""

    kind = "llm"

    def __init__(self, specs: dict[str, UserSpec], generator: Generator, *, max_tokens: int = 256,
                 seed: int | None = None):
        self.specs = specs
        self.generator = generator
        self.judge_params = GenerationParams(temperature=0.0, max_tokens=4, seed=seed)
        self.rewrite_params = GenerationParams(temperature=0.0, max_tokens=max_tokens, seed=seed)

    def feedback(self, source: str, document: str, draft: str) -> Feedback:
        preference = self.specs[source].prelude or self.specs[source].description
        judged = self.generator.generate([prompts.user_judge_prompt(draft, preference)], self.judge_params)[0]
        tokens_in, tokens_out = judged.prompt_tokens, judged.completion_tokens
        if judged.texts[0].strip().lower().startswith("yes"):
            return Feedback(draft, True, tokens_in, tokens_out)
        rewrite = self.generator.generate([prompts.user_rewrite_prompt(draft, preference)], self.rewrite_params)[0]
        edited = rewrite.texts[0].strip() or draft
        return Feedback(edited, edited == draft.strip(), tokens_in + rewrite.prompt_tokens,
                        tokens_out + rewrite.completion_tokens)
