"""Generator back-ends behind one protocol: ``generate(prompts, GenerationParams) -> [Generation]``."""

from __future__ import annotations

from .base import ChatPrompt, Generation, GenerationParams, Generator, apply_stop

__all__ = ["ChatPrompt", "Generation", "GenerationParams", "Generator", "apply_stop", "build_generator"]


def build_generator(settings) -> Generator:
    """The back-end that ``settings.generator`` names, configured from ``settings``."""
    if settings.generator == "transformers":
        from .model_files import ensure_converted_model
        from .transformers_backend import TransformersGenerator

        path = settings.generator_model or ensure_converted_model(settings.models_dir)
        return TransformersGenerator(path)
    if settings.generator == "openai":
        from .openai_backend import OpenAIGenerator

        return OpenAIGenerator(settings.generator_url, settings.generator_model,
                               api_key=settings.generator_api_key, timeout=settings.generator_timeout,
                               retries=settings.generator_retries)
    if settings.generator == "vllm":
        from .vllm_backend import VLLMGenerator  # optional extra: redline[vllm]

        return VLLMGenerator(settings.generator_model or str(_embedded_path(settings)))
    raise ValueError(f"unknown generator back-end {settings.generator!r}")


def _embedded_path(settings):
    from .model_files import ensure_converted_model

    return ensure_converted_model(settings.models_dir)
