"""One router per feature; each route only validates, calls the Agent and shapes the answer."""

from . import chat, generate, interactions, ops, users

__all__ = ["chat", "generate", "interactions", "ops", "users"]
