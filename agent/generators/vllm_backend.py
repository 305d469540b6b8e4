"""vLLM's engine in process (optional extra ``redline[vllm]``), for single-box deployments.

All prompts of one call go to one ``LLM.chat`` call with ``SamplingParams(n=...)``, so vLLM batches
them (and shares their common prefixes) itself.
"""

from __future__ import annotations

import threading
from typing import Sequence

from redline.runtime import MODEL_LOADING

from ..errors import GeneratorUnavailable
from .base import ChatPrompt, Generation, GenerationParams, RequestsFirst

__all__ = ["VLLMGenerator"]


class VLLMGenerator:
    """``VLLMGenerator(model_dir_or_name, **engine_kwargs)``; the engine starts on first use.

    ``engine_kwargs`` go to ``vllm.LLM`` (default ``enforce_eager=True``: no compile step at start,
    which costs minutes on CPU).
    """

    def __init__(self, model: str, **engine_kwargs):
        self.model = str(model)
        self.model_name = self.model.rstrip("/").rsplit("/", 1)[-1]
        self.engine_kwargs = {"enforce_eager": True, **engine_kwargs}
        self._llm = None
        self._lock = threading.Lock()  # loading
        self._turn = RequestsFirst()  # one LLM.chat at a time, requests before background work

    def _load(self):
        if self._llm is None:
            with MODEL_LOADING:  # see redline.runtime.MODEL_LOADING
                try:
                    from vllm import LLM
                except ImportError as exc:
                    raise GeneratorUnavailable("the vllm back-end needs vLLM: pip install 'redline[vllm]'") from exc
                try:
                    self._llm = LLM(model=self.model, **self.engine_kwargs)
                except Exception as exc:  # any engine start failure is one clear error
                    raise GeneratorUnavailable(f"vLLM could not start {self.model}: {exc}") from exc
        return self._llm

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        if not prompts:
            return []
        from vllm import SamplingParams

        sampling = SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                  max_tokens=params.max_tokens, stop=list(params.stop) or None, seed=params.seed)
        with self._lock:
            llm = self._load()
        with self._turn(params.priority):
            outputs = llm.chat(list(prompts), sampling, use_tqdm=False)
        return [Generation([c.text.strip() for c in out.outputs], prompt_tokens=len(out.prompt_token_ids or []),
                           completion_tokens=sum(len(c.token_ids) for c in out.outputs)) for out in outputs]
