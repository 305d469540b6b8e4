"""The ``redline`` command: thin, like api/, over ``redline.agent`` (and ``redline.evals`` for ``eval``).
Commands only parse arguments, call the library and print; library errors become one-line messages."""

from redline.runtime import quiet_offline_models

quiet_offline_models()  # before .commands imports faiss (and later torch): they read OMP_WAIT_POLICY on load

from .commands import cli, main  # noqa: E402

__all__ = ["cli", "main"]
