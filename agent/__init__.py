"""The personalization loop (CIPHER), prompts, edit cost, configuration and generator back-ends."""

from .agent import Agent
from .config import Settings
from .editcost import EditCost, edit_cost, tokenize, word_diff
from .errors import (
                     AgentError,
                     EditConflict,
                     EmbeddingUnavailable,
                     GeneratorUnavailable,
                     InvalidInput,
                     InvalidRule,
                     RuleConflict,
                     UnknownApiKey,
                     UnknownInteraction,
                     UnknownPreference,
                     UnknownRule,
                     UnknownUser,
)
from .generators import Generation, GenerationParams, Generator
from .jobs import JobOutcome
from .types import EditReceipt, GenerateOptions, GenerateResult, LearnResult

__all__ = [
    "Agent", "GenerateOptions", "GenerateResult", "EditReceipt", "LearnResult", "JobOutcome", "Settings",
    "EditCost", "edit_cost", "tokenize", "word_diff", "AgentError", "InvalidInput", "UnknownInteraction",
    "UnknownUser", "UnknownPreference", "UnknownApiKey", "EditConflict", "UnknownRule", "InvalidRule",
    "RuleConflict", "GeneratorUnavailable", "EmbeddingUnavailable", "Generation", "GenerationParams", "Generator",
]
