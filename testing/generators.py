"""Real, deterministic Generators for tests and benchmarks: answers come from a function of the prompt."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from redline.agent import GeneratorUnavailable
from redline.agent.generators import ChatPrompt, Generation, GenerationParams

__all__ = ["ScriptedGenerator", "ToggleGenerator"]


class ScriptedGenerator:
    """``respond(prompt, index) -> text``; records every call in ``calls`` (prompts, params).

    >>> gen = ScriptedGenerator(lambda prompt, i: f"answer {i}")
    >>> gen.generate([[{"role": "user", "content": "hi"}]], GenerationParams(n=2))[0].texts
    ['answer 0', 'answer 1']
    """

    model_name = "scripted"

    def __init__(self, respond: Callable[[ChatPrompt, int], str] | None = None):
        self.respond = respond or (lambda prompt, i: f"draft {i}")
        self.calls: list[tuple[list[ChatPrompt], GenerationParams]] = []
        self.down = False

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        if self.down:
            raise GeneratorUnavailable("scripted generator is down")
        self.calls.append((list(prompts), params))
        out = []
        for prompt in prompts:
            texts = [self.respond(prompt, i) for i in range(params.n)]
            words = sum(len(m["content"].split()) for m in prompt)
            out.append(Generation(texts, prompt_tokens=words, completion_tokens=sum(len(t.split()) for t in texts)))
        return out


class ToggleGenerator(ScriptedGenerator):
    """Deterministic texts; optional delay; down while a flag file exists, broken (a bug: ``RuntimeError``, not
    an outage) while another exists; keeps no call log."""

    def __init__(self, delay: float = 0.0, down_file: str | None = None, broken_file: str | None = None):
        super().__init__(self._respond)
        self.delay, self.down_file = delay, Path(down_file) if down_file else None
        self.broken_file = Path(broken_file) if broken_file else None

    @staticmethod
    def _respond(prompt, i: int) -> str:
        last = prompt[-1]["content"]
        if "preference" in prompt[0]["content"].lower() or "preference" in last.lower()[:400]:
            return "prefers short sentences and a friendly tone"
        return "Draft: " + " ".join(last.split()[-30:])

    def generate(self, prompts, params):
        if self.down_file is not None and self.down_file.exists():
            raise GeneratorUnavailable("scripted generator is down")
        if self.broken_file is not None and self.broken_file.exists():
            raise RuntimeError("scripted generator is broken")
        if self.delay:
            time.sleep(self.delay)
        out = super().generate(prompts, params)
        self.calls.clear()
        return out
