"""One router per feature; each route only validates, calls the Agent and shapes the answer (``ui``: as pages)."""

from . import chat, generate, interactions, ops, ui, users

__all__ = ["chat", "generate", "interactions", "ops", "ui", "users"]
