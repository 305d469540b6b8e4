"""The personalization loop (CIPHER), prompts, edit cost, configuration and generator back-ends."""

from .agent import Agent, EditReceipt, GenerateOptions, GenerateResult, LearnResult
from .config import Settings, get_settings
from .editcost import EditCost, edit_cost, tokenize
from .errors import (AgentError, EditConflict, GeneratorUnavailable, InvalidInput, UnknownInteraction,
                     UnknownPreference, UnknownUser)
from .generators import Generation, GenerationParams, Generator

__all__ = [
    "Agent", "GenerateOptions", "GenerateResult", "EditReceipt", "LearnResult", "Settings", "get_settings",
    "EditCost", "edit_cost", "tokenize", "AgentError", "InvalidInput", "UnknownInteraction", "UnknownUser",
    "UnknownPreference", "EditConflict", "GeneratorUnavailable", "Generation", "GenerationParams", "Generator",
]
