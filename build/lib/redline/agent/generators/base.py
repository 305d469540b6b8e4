"""The generator protocol: many chat prompts in, n sampled texts per prompt out, in one call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

__all__ = ["Message", "ChatPrompt", "GenerationParams", "Generation", "Generator"]

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}
ChatPrompt = list  # list[Message]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling options for one batched call; validated on construction.

    ``temperature=0`` means greedy decoding (then ``n`` > 1 repeats the same text on most back-ends).
    """

    n: int = 1
    temperature: float = 0.7
    max_tokens: int = 192
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_p: float = 0.95

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 1 or self.n > 64:
            raise ValueError(f"n must be an integer in [1, 64], got {self.n!r}")
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature!r}")
        if not isinstance(self.max_tokens, int) or not 1 <= self.max_tokens <= 8192:
            raise ValueError(f"max_tokens must be an integer in [1, 8192], got {self.max_tokens!r}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        object.__setattr__(self, "stop", tuple(self.stop))

    def cache_key(self) -> tuple:
        return (self.n, float(self.temperature), self.max_tokens, self.stop, self.seed, float(self.top_p))


@dataclass
class Generation:
    """What one prompt produced: ``n`` texts and the tokens it cost."""

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    """Anything that turns chat prompts into texts. ``model_name`` names what answered."""

    model_name: str

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        """One Generation per prompt, in order; raises ``GeneratorUnavailable`` when down."""
        ...


def apply_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the first stop string (back-ends that cannot stop natively use this)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]
