"""Configuration: one typed settings object, read from ``REDLINE_*`` environment variables.

CLI flags override individual fields (``Settings(**overrides)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REDLINE_", extra="ignore")

    data_dir: Path = Field(Path.home() / ".redline", description="Where the store, models and checkpoints live.")
    generator: Literal["transformers", "openai", "vllm"] = Field(
        "transformers",
        description="Generator back-end: in-process CPU model, OpenAI-compatible server, or in-process vLLM.")
    generator_url: str = Field("http://127.0.0.1:8000/v1", description="Base URL of the OpenAI-compatible server.")
    generator_model: str | None = Field(
        None, description="transformers/vllm: a packaged model's short name (qwen2.5-coder-0.5b, the default, or "
                          "smollm2) or a local model folder; openai: the served model's name (default: the first "
                          "one the server lists).")
    generator_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="transformers: precision; auto = bfloat16 on CPUs with native bf16 (AVX-512 BF16/AMX), "
                            "else float32.")
    generator_api_key: str = Field("EMPTY", description="API key sent to the OpenAI-compatible server.")
    generator_timeout: float = Field(120.0, gt=0, description="Seconds before a generator request times out.")
    generator_retries: int = Field(2, ge=0, description="Retries (with backoff) for a failed generator request.")
    embedding_model: Path | None = Field(
        None, description="sentence-transformers folder; default: packaged all-MiniLM-L6-v2.")
    embedding_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Embedder precision; auto = bfloat16 on CPUs with native bf16 (AVX-512 BF16/AMX), "
                            "else float32.")
    k: int = Field(5, ge=1, le=50, description="CIPHER: how many nearest past contexts to retrieve.")
    delta: int = Field(0, ge=0, description="Edits whose word-level cost is at or below this count as 'no edit'.")
    max_tokens: int = Field(192, ge=1, le=8192, description="Default maximum tokens per generated text.")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Default sampling temperature (0 = greedy).")
    max_text_chars: int = Field(20_000, ge=1, description="Longest context or edited text accepted, in characters.")
    context_chars_in_prompt: int = Field(4_000, ge=200, description="Context characters shown to the generator.")
    index_cache_users: int = Field(256, ge=1, description="Per-user FAISS indexes kept in memory.")
    seed: int | None = Field(None, description="Sampling seed for reproducible generations.")
    log_text: bool = Field(False, description="Write users' texts (contexts, preferences) into INFO log lines; "
                                              "for debugging only (by default log lines carry ids and lengths).")
    # -- HTTP server (api/) --
    auth: bool = Field(True, description="Require a Bearer API key on /v1 routes; false only for local use "
                                         "(every request then acts in tenant 'default').")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest HTTP request body accepted, in bytes.")
    max_request_tokens: int = Field(2048, ge=1, le=8192, description="Largest max_tokens one HTTP request may ask for.")
    retry_after_seconds: int = Field(10, ge=1, description="Retry-After sent with 503 when the generator is down; "
                                                          "also the learning worker's back-off.")
    maintenance_interval: float = Field(300.0, gt=0, description="Seconds between the worker's maintenance calls.")
    secure_cookies: bool = Field(False, description="Always mark the inspector's session cookie Secure (sent over "
                                                    "HTTPS only), whatever the request came over.")
    trust_proxy_headers: bool = Field(False, description="Believe a proxy's X-Forwarded-Proto: https (the client "
                                                         "came over HTTPS), so the session cookie is Secure; only "
                                                         "when every request reaches this server through that proxy.")

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def store_path(self) -> Path:
        return self.data_dir / "redline.db"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    # -- the reward and selection (policies/) --
    reward_heads: int = Field(4, ge=1, le=64, description="Reward heads: K ideal points of the shared edit profile "
                                                         "(MiCRo stage 1; 1 = one population ideal point).")
    reward_tau: float = Field(1.0, gt=0, description="Temperature of the per-user online routing (Hedge) step.")
    reward_mode: Literal["profile", "mixture"] = Field(
        "profile", description="How a user's reward scores candidates: profile (the user's own ideal point, shrunk "
                               "towards their routed heads, plus the edit head) or mixture (MiCRo's head mixture).")
    reward_router: bool = Field(False, description="Train a context router over the heads (from the contexts' "
                                                   "embeddings, stored with each pair); off: it changed no measured "
                                                   "figure and costs most of a retraining.")
    reward_retrain_every: int = Field(20, ge=1, description="Retrain the shared reward once this many new "
                                                            "preference pairs arrived since the last checkpoint.")
    reward_n: int = Field(4, ge=1, le=16, description="Candidates per request for best_of_n and rps (default for n).")
    reward_candidates: Literal["samples", "revisions"] = Field(
        "revisions", description="Alternatives to the greedy draft: samples of the task prompt (scored on form "
                                 "features) or revisions of the greedy draft (one more generator call; all features).")
    reward_candidate_temperature: float = Field(
        0.8, gt=0.0, le=2.0, description="Sampling temperature of the alternatives, also when the request's is 0.")
    reward_seed: int = Field(0, description="Seed for training the reward.")
    reward_min_pairs: int = Field(
        8, ge=0, description="best_of_n / rps draft alternatives only for a user whose reward state holds at least "
                             "this many of their own pairs; before that, the greedy target draft alone (no price for "
                             "exploring before the reward has evidence).")
    reward_min_confidence: float = Field(
        0.6, ge=0.5, lt=1.0, description="The reward replaces the greedy target draft only by a candidate it expects "
                                         "the user to prefer with a probability above this (0.5: any better score).")

    # -- learned edit rules (agent/rules.py) --
    rules: bool = Field(True, description="Learn edit rules from users' edits and apply each user's active rules to "
                                          "their drafts; false turns both off server-wide.")
    rules_min_support: int = Field(2, ge=1, description="Edits that must have made a rule's fix before it is active.")
    rules_min_precision: float = Field(0.8, ge=0.0, le=1.0, description="Share of the edits that offered the chance "
                                       "in which the user made the fix, at least, for a rule to be active.")
    rules_local_chance: float = Field(0.05, gt=0.0, le=1.0, description="A rule not active over all of a user's "
                                      "edits applies among the nearest contexts only if its support there would be "
                                      "this unlikely by chance, given the user's overall precision.")
    rules_history: int = Field(200, ge=0, le=10_000, description="A newly mined (or rewritten) rule is counted over "
                                                                 "the user's last this many edits.")
    rules_prune_after: int = Field(50, ge=1, description="A mined rule with one supporting edit is forgotten once "
                                                         "this many later edits gave it no chance to show again.")

    @property
    def rewards_dir(self) -> Path:
        return self.data_dir / "rewards"

