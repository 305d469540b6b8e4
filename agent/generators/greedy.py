"""Greedy decoding asked for ``n`` > 1 texts per prompt: decode once and repeat the text, which is what greedy
decoding yields anyway (and what back-ends that cannot sample greedily n times need)."""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from .base import ChatPrompt, Generation, GenerationParams, Generator

__all__ = ["greedy_copies", "GreedyCopies"]


def greedy_copies(generate: Callable[[Sequence[ChatPrompt], GenerationParams], list[Generation]],
                  prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
    """``params.n`` copies of the one text ``generate`` writes per prompt with ``n=1``.

    Token accounting follows a back-end that decodes the ``n`` copies (the OpenAI API counts completion tokens
    over all choices): prompt tokens once, completion tokens ``n`` times.
    """
    once = generate(prompts, dataclasses.replace(params, n=1))
    return [Generation(g.texts[:1] * params.n, g.prompt_tokens, g.completion_tokens * params.n, dict(g.extra))
            for g in once]


class GreedyCopies:
    """A Generator over ``inner`` that answers greedy (temperature 0) requests for ``n`` > 1 with copies.

    Above a ``CachingGenerator`` it lets best-of-n / RPS rounds reuse the cached ``n`` = 1 drafts of greedy
    requests instead of decoding again.
    """

    def __init__(self, inner: Generator):
        self.inner = inner
        self.model_name = inner.model_name

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        if params.temperature > 0 or params.n == 1:
            return self.inner.generate(prompts, params)
        return greedy_copies(self.inner.generate, prompts, params)
