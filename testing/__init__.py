"""Test doubles that the tests and the benchmarks share: a real implementation of the generator protocol that
answers from a function of the prompt (``ScriptedGenerator``, in process), and the same answers from a real
OpenAI-compatible HTTP server (``python -m redline.testing.server``) that every process of ``redline serve`` can
reach, counting its calls by kind. Never a default of the product: nothing outside tests/, benchmarks/ and this
package imports it."""

from .generators import ScriptedGenerator, scripted_answer

__all__ = ["ScriptedGenerator", "scripted_answer"]
