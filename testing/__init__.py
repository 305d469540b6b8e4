"""Test doubles that the tests and the benchmarks share: real implementations of the generator protocol that
answer from a function of the prompt, and (``python -m redline.testing.server``) the real app serving one.
Never a default of the product: nothing outside tests/, benchmarks/ and this package imports it."""

from .generators import ScriptedGenerator, ToggleGenerator

__all__ = ["ScriptedGenerator", "ToggleGenerator"]
