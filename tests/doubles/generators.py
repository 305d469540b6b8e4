"""Real, deterministic Generators for tests and benchmarks: answers come from a function of the prompt."""

from __future__ import annotations

from typing import Callable, Sequence

from redline.agent import GeneratorUnavailable
from redline.agent.generators import ChatPrompt, Generation, GenerationParams

__all__ = ["ScriptedGenerator", "scripted_answer"]


def scripted_answer(prompt: ChatPrompt, i: int) -> str:
    """The scripted generator's answer to ``prompt``: a fixed preference when the prompt asks for one (inference,
    aggregation), else a draft made of the prompt's last 30 words (a task prompt asking to suit a preference is a
    draft too: answering it with the preference is what the agent throws away as an echo)."""
    last = prompt[-1]["content"]
    asks = "preference" in prompt[0]["content"].lower() or "preference" in last.lower()[:400]
    if asks and "to suit this user's preference" not in last:
        return "prefers short sentences and a friendly tone"
    return "Draft: " + " ".join(last.split()[-30:])


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
