"""The ``redline`` command: thin, like api/, over ``redline.agent`` (and ``redline.evals`` for ``eval``).
Commands only parse arguments, call the library and print; library errors become one-line messages."""

from .commands import cli, main

__all__ = ["cli", "main"]
