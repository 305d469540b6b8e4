"""Test doubles that the tests and the benchmarks share (in tests/, so no wheel ships them; importable as ``doubles``
with tests/ on the path, as pytest and the benchmarks put it): a real implementation of the generator protocol that
answers from a function of the prompt (``ScriptedGenerator``, in process), and the same answers from a real
OpenAI-compatible HTTP server (``PYTHONPATH=tests python -m doubles.server``) that every process of ``redline serve``
can reach, counting its calls by kind. Never a default of the product: nothing outside tests/ and benchmarks/ imports
it."""

from .generators import ScriptedGenerator, scripted_answer

__all__ = ["ScriptedGenerator", "scripted_answer"]
