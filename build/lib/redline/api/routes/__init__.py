"""One router per feature; each route only validates, calls the Agent and shapes the answer."""

from . import chat, edits, generate, ops, users

__all__ = ["chat", "edits", "generate", "ops", "users"]
