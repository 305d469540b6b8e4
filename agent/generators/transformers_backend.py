"""In-process CPU generator on transformers: the embedded default (see ``model_files``).

Precision: ``dtype="auto"`` runs in bfloat16 where the CPU computes it natively (AVX-512 BF16 or AMX;
on this project's machines 2-5x faster than float32 for a 0.5B model, most of all when prompts are
batched) and in float32 elsewhere.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Sequence

from redline.runtime import MODEL_LOADING, cpu_has_bf16

from ..errors import GeneratorUnavailable
from .base import ChatPrompt, Generation, GenerationParams, RequestsFirst, apply_stop
from .greedy import greedy_copies

__all__ = ["TransformersGenerator", "cpu_has_bf16", "resolve_dtype"]
log = logging.getLogger(__name__)
DTYPES = ("auto", "float32", "bfloat16")


def resolve_dtype(dtype: str) -> str:
    """``auto`` → ``bfloat16`` on a CPU with native bf16, else ``float32``; other names pass through."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if dtype == "auto":
        return "bfloat16" if cpu_has_bf16() else "float32"
    return dtype


class TransformersGenerator:
    """Batched sampling with ``model.generate``: all prompts (left-padded) × ``n`` in one forward loop.

    ``model_path`` is a local transformers folder; the model loads on the first call, in ``dtype``
    (``auto``, ``float32`` or ``bfloat16``; see ``resolve_dtype``). One call decodes at a time; background calls
    wait behind requests for at most ``background_wait`` seconds (``RequestsFirst``).
    """

    def __init__(self, model_path: str | os.PathLike, *, max_batch: int = 16, threads: int | None = None,
                 dtype: str = "auto", background_wait: float = 30.0):
        self.model_path = Path(model_path)
        self.model_name = self.model_path.name
        self.max_batch = max_batch
        self.threads = threads
        self.dtype = resolve_dtype(dtype)
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()  # loading
        self._turn = RequestsFirst(background_wait)  # decoding

    def _load(self):
        if self._model is None:
            with MODEL_LOADING:  # see redline.runtime.MODEL_LOADING
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                if self.threads:
                    torch.set_num_threads(self.threads)
                try:
                    tokenizer = AutoTokenizer.from_pretrained(self.model_path)
                    model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=getattr(torch, self.dtype))
                except Exception as exc:
                    raise GeneratorUnavailable(
                        f"could not load generator model from {self.model_path}: {exc}") from exc
                tokenizer.padding_side = "left"
                if tokenizer.pad_token is None:
                    tokenizer.pad_token = tokenizer.eos_token
                model.eval()
                self._tokenizer, self._model = tokenizer, model
        return self._tokenizer, self._model

    def load(self) -> "TransformersGenerator":
        with self._lock:
            self._load()
        return self

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        import torch

        if not prompts:
            return []
        if params.n > 1 and params.temperature <= 0:
            # transformers refuses num_return_sequences > 1 without sampling; greedy decoding would give n equal
            # texts anyway. Decode once and copy; completion tokens are reported per copy, as the OpenAI API does.
            return greedy_copies(self.generate, prompts, params)
        with self._turn(params.priority):
            with self._lock:
                tokenizer, model = self._load()
            texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
            results = [Generation([]) for _ in prompts]
            # Chunk so that prompts × n stays within max_batch sequences per forward pass.
            per_chunk = max(1, self.max_batch // params.n)
            for start in range(0, len(texts), per_chunk):
                chunk = texts[start:start + per_chunk]
                enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
                if params.seed is not None:
                    torch.manual_seed(params.seed + start)
                sample = params.temperature > 0
                kwargs = dict(max_new_tokens=params.max_tokens, num_return_sequences=params.n,
                              pad_token_id=tokenizer.pad_token_id, do_sample=sample)
                if sample:
                    kwargs.update(temperature=params.temperature, top_p=params.top_p)
                else:
                    kwargs.update(temperature=None, top_p=None, top_k=None)
                with torch.inference_mode():
                    out = model.generate(**enc, **kwargs)
                prompt_len = enc["input_ids"].shape[1]
                prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
                for j, seq in enumerate(out):
                    which = start + j // params.n
                    new = seq[prompt_len:]
                    eos = (new == tokenizer.eos_token_id).nonzero()
                    used = int(eos[0, 0]) + 1 if len(eos) else len(new)
                    text = tokenizer.decode(new[:used], skip_special_tokens=True)
                    results[which].texts.append(apply_stop(text, params.stop).strip())
                    results[which].completion_tokens += used
                for j, count in enumerate(prompt_tokens):
                    results[start + j].prompt_tokens = int(count)
        return results
