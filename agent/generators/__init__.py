"""Generator back-ends behind one protocol: ``generate(prompts, GenerationParams) -> [Generation]``."""

from __future__ import annotations

from ..errors import GeneratorUnavailable
from .base import ChatPrompt, Generation, GenerationParams, Generator, RequestsFirst, apply_stop, stream_generation
from .greedy import GreedyCopies

__all__ = ["ChatPrompt", "Generation", "GenerationParams", "Generator", "GreedyCopies", "RequestsFirst", "apply_stop",
           "build_generator", "load_generator", "stream_generation"]


DEFAULT_OPENAI_URL = "http://127.0.0.1:8000/v1"


def build_generator(settings) -> Generator:
    """The back-end that ``settings.generator`` names, configured from ``settings``."""
    if settings.generator == "llama-server":
        from .llama_backend import LlamaServerGenerator
        from .llama_server import LlamaServer

        http = dict(api_key=settings.generator_api_key, timeout=settings.generator_timeout,
                    retries=settings.generator_retries, background_wait=settings.generator_background_wait)
        if settings.generator_url:
            return LlamaServerGenerator(settings.generator_url, slots=settings.generator_slots, **http)
        return LlamaServerGenerator(server=LlamaServer.from_settings(settings), **http)
    if settings.generator == "transformers":
        from .model_files import resolve_model
        from .transformers_backend import TransformersGenerator

        return TransformersGenerator(resolve_model(settings.generator_model, settings.models_dir),
                                     dtype=settings.generator_dtype, background_wait=settings.generator_background_wait)
    if settings.generator == "openai":
        from .openai_backend import OpenAIGenerator

        return OpenAIGenerator(settings.generator_url or DEFAULT_OPENAI_URL, settings.generator_model,
                               api_key=settings.generator_api_key, timeout=settings.generator_timeout,
                               retries=settings.generator_retries)
    if settings.generator == "vllm":
        from .model_files import MODELS, resolve_model
        from .vllm_backend import VLLMGenerator  # optional extra: redline[vllm]

        model = settings.generator_model
        if model is None or model in MODELS:  # a packaged model: its converted folder
            model = str(resolve_model(model, settings.models_dir))
        return VLLMGenerator(model)
    raise ValueError(f"unknown generator back-end {settings.generator!r}")


def load_generator(settings) -> Generator:
    """``build_generator``, with a failure to set it up (model files missing, bad settings) raised as
    ``GeneratorUnavailable``."""
    try:
        return build_generator(settings)
    except (OSError, RuntimeError, ValueError) as exc:
        raise GeneratorUnavailable(f"could not set up the generator: {exc}") from exc
